"""Resumable, verified downloads: a file appears under its final name only once complete and checked.

The bytes go to `<name>.part`; an interrupted run leaves only that, and the next run
asks the server for the rest (HTTP Range) instead of starting again. A size or SHA-256
mismatch deletes the partial file, so a bad download is never mistaken for a good one.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from microspeech.files import exclusive_lock
from microspeech.progress import progress_bar

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download that could not be completed or verified; the message names the URL or file."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, url: str, size: int | None, sha256: str | None, *, found: bool = False) -> None:
    """Size and SHA-256 as published; `found`: a file that was already there, not one downloaded
    (the message says what the caller does with it)."""
    actual_size = path.stat().st_size
    what = "holds" if found else "got"
    outcome = "" if found else "; the partial file was deleted"
    if size is not None and actual_size != size:
        raise DownloadError(f"{url}: {what} {actual_size} bytes, expected {size}{outcome}")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            outcome = "" if found else "; the file was deleted"
            raise DownloadError(f"{url}: SHA-256 {actual} does not match the published {sha256}{outcome}")


def download_file(
    url: str,
    destination: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    timeout_s: float = 30.0,
    show_progress: bool = True,
) -> Path:
    """Download `url` to `destination` (resuming a previous partial download) and verify it.

    Returns `destination` at once when it already exists. Raises DownloadError naming
    the URL when the server cannot be reached or the bytes do not match.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    with exclusive_lock(destination.with_name(destination.name + ".lock")):
        if destination.is_file():
            # An archive found in the download folder (placed there by hand, or left by an older
            # version) gets the same size and SHA-256 check as a fresh download; a mismatch is
            # deleted and downloaded again.
            try:
                _verify(destination, str(destination), size, sha256, found=True)
                return destination
            except DownloadError as error:
                destination.unlink()
                removed = f" (the archive already at {error}; removed)"
        else:
            removed = ""
        have = partial.stat().st_size if partial.exists() else 0
        if size is not None and have > size:
            partial.unlink()
            have = 0
        expected = size
        if size is None or have < size:
            try:
                expected = _fetch(url, partial, have, size, timeout_s, show_progress)
            except DownloadError as error:  # the user should know their file is gone
                raise DownloadError(f"{error}{removed}") from error
        got = partial.stat().st_size if partial.exists() else 0
        if expected is not None and got < expected:
            # A silent early close: keep the bytes so the next run resumes.
            raise DownloadError(
                f"{url}: the connection closed after {got} of {expected} bytes; "
                f"run again to resume from {partial}"
            )
        try:
            _verify(partial, url, size, sha256)
        except DownloadError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(destination)
    return destination


def _fetch(url: str, partial: Path, have: int, size: int | None, timeout_s: float, show: bool) -> int | None:
    """Append the missing bytes to `partial`; returns the expected total size when known."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have and (size is None or have == size):  # it holds everything
            return size
        if error.code == 416 and have:
            # The server's file is shorter than the partial one: not the published archive, and
            # "run again to resume" would never help. The partial file goes.
            partial.unlink(missing_ok=True)
            raise DownloadError(
                f"{url}: the server refused to resume after {have} of {size} bytes (HTTP 416): its file "
                f"is not the published archive; the partial download {partial} was deleted"
            ) from error
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{url}: cannot connect ({reason})") from error
    with response:
        # A 206 whose range starts elsewhere (a server that sends the whole file as "partial") is
        # no resume: appended, every later run failed the same way on the same partial file.
        content_range = (response.headers.get("Content-Range") or "").strip().lower()
        elsewhere = bool(content_range) and not content_range.startswith(f"bytes {have}-")
        resumed = have and response.status == 206 and not elsewhere
        if not resumed:
            have = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        if "html" in (response.headers.get("Content-Type") or "").lower():
            # A proxy's or a login page, sent without a length: kept, the next run resumed the
            # real archive onto it and found the checksum wrong only after the whole download.
            raise DownloadError(
                f"{url}: the server answered with a web page, not the archive (a proxy or login "
                "page?); nothing was written"
            )
        if size is not None and length and length.isdigit() and have + int(length) != size:
            # Not the archive: a proxy's or a login page, or another file; the partial download
            # kept so far stays for the next run (opened below only once the answer fits).
            raise DownloadError(
                f"{url}: the server answered with {have + int(length)} bytes, not the {size}-byte "
                "archive (a proxy or login page?); nothing was written"
            )
        total = size if size is not None else (have + int(length) if length else None)
        progress = progress_bar(show, kind="bytes", only_on_terminal=False)
        with progress, _written(partial, resumed) as handle:
            verb = "resuming" if resumed else "downloading"
            task = progress.add_task(f"{verb} {partial.stem}", total=total)
            progress.update(task, completed=have)
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as error:
                    raise DownloadError(
                        f"{url}: the connection broke after {handle.tell()} bytes ({error}); "
                        f"run again to resume from {partial}"
                    ) from error
                if not chunk:
                    break
                try:
                    handle.write(chunk)
                except OSError as error:  # a full disk was reported as a broken connection
                    raise _write_error(partial, error) from error
                progress.advance(task, len(chunk))
    return total


@contextlib.contextmanager
def _written(partial: Path, resumed: bool) -> Iterator[BinaryIO]:
    """The partial file, appended to or started over; a failed open or a failed last flush at
    close (a full disk) is a DownloadError, not an OSError traceback."""
    try:
        handle = open(partial, "ab" if resumed else "wb")
    except OSError as error:
        raise _write_error(partial, error) from error
    try:
        yield handle
    finally:
        try:
            handle.close()
        except OSError as error:
            raise _write_error(partial, error) from error


def _write_error(partial: Path, error: OSError) -> DownloadError:
    return DownloadError(
        f"{partial}: cannot write the download ({error.strerror or error}); make room, then run again "
        "to resume"
    )
