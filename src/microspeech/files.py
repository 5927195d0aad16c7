"""Atomic file output: a reader (or a crash) never sees a half-written file under its final name.
And the one cross-process lock (`exclusive_lock`) for whatever writes a shared folder."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from microspeech.stopping import deferred


class WriteError(OSError):
    """An output file could not be written; the message names the file, not its temporary."""


def output_target(path: str | Path) -> Path:
    """Where writing `path` lands: through a symbolic link to its target file (a rename would
    replace the link itself, leaving its target stale). A link to a device or pipe (/dev/stdout)
    stays as it is, to be written in place."""
    path = Path(path)
    if not path.is_symlink():
        return path
    try:
        mode = path.stat().st_mode  # follows the link
    except OSError:  # a dangling link: its target is created, as a shell's `>` would, in a folder
        target = Path(os.path.realpath(path))  # that exists: never folders outside the output's
        if not target.parent.is_dir():
            raise WriteError(
                f"cannot write {path}: a link to {target}, whose folder does not exist"
            ) from None
        return target
    return Path(os.path.realpath(path)) if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else path


def is_special_file(path: Path) -> bool:
    """A device, FIFO or socket (`--json /dev/null`, `/dev/stdout`): written in place, never renamed over."""
    return path.exists() and not path.is_file() and not path.is_dir()


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; rename it onto `path` only if the block succeeds.

    For writers that take a file name (savefig, soundfile, np.save, keras save): the
    temporary keeps `path`'s suffix so format detection still works. A symbolic link is written
    through to its target; a device or FIFO is written in place. An OSError while writing
    becomes a `WriteError` that names `path`.
    """
    path = output_target(path)
    if is_special_file(path):
        yield path
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}"
        )
    except OSError as error:
        raise _write_error(path, error) from error
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, kept_mode(path))
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise _write_error(path, error) from error
        raise


def kept_mode(path: Path) -> int:
    """The mode a file written anew at `path` gets: the old file's (a private model stays private,
    `tune --write` made it world-readable), else 0644 (mkstemp's 0600 would hide outputs)."""
    try:
        return stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o644
    except OSError:
        return 0o644


def _write_error(path: Path, error: OSError) -> WriteError:
    reason = error.strerror or str(error)
    if isinstance(error, IsADirectoryError) and path.is_dir():
        reason = "a folder stands there"
    return WriteError(f"cannot write {path}: {reason}")


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file and a rename."""
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def text_bytes(text: str) -> bytes:
    """`text` as UTF-8, where a file name that is not UTF-8 (Python holds its bytes as surrogates)
    comes out as its own bytes: for what is written or hashed (strict UTF-8 raised "surrogates not
    allowed" for such a name, and stopped the whole dataset)."""
    return text.encode("utf-8", "surrogateescape")


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text_bytes(text))


def write_files_atomic(contents: dict[Path, bytes]) -> list[Path]:
    """Write several files as a set: every one is staged beside its target first, then all are renamed.

    Any failure while staging (a full disk, a read-only folder) removes the staged files and
    leaves every existing target as it was, so a failed export never mixes a new header with an
    old source. The renames come last and cannot fail halfway for want of space.
    """
    folders = [str(path) for path in contents if Path(path).is_dir()]
    if folders:
        raise IsADirectoryError(f"{', '.join(folders)}: a folder stands where a file is to be written")
    staged: list[tuple[Path, Path]] = []
    path = Path()
    try:
        for path, data in contents.items():
            path = output_target(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}"
            )
            staged.append((Path(temporary), path))
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.chmod(temporary, kept_mode(path))
        with deferred():  # a stop between two renames would publish half the set
            for temporary, path in staged:
                os.replace(temporary, path)
    except BaseException as error:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise _write_error(path, error) from error
        raise
    return [Path(path) for path in contents]


class LockedError(RuntimeError):
    """Another process holds the lock (raised by `exclusive_lock(..., wait=False)`)."""


@contextmanager
def exclusive_lock(path: str | Path, *, wait: bool = True) -> Iterator[Path]:
    """Hold an exclusive advisory lock on the file `path` (created if needed) for the block.

    Serializes extraction, downloads, generation and training across processes (pytest-xdist
    workers, parallel CLIs). The kernel releases the lock when its holder ends, SIGKILL
    included, so a lock file left behind never blocks anyone. With `wait=False` a lock held
    elsewhere raises `LockedError` at once instead of waiting for it. A holder may remove the
    file when done (`atomic_directory` does): a lock won on a file no longer at `path` is let go
    and taken again on the file there now, so two processes never both hold "the" lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise LockedError(f"{path} is locked by another process") from None
                if not said:  # once, so a second download or extraction does not sit there in silence
                    logging.getLogger(__name__).warning(
                        "waiting for another process working on the same files (it holds %s)", path
                    )
                    said = True
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(handle.fileno())
            if current is None or (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev):
                continue  # removed (or replaced) while we waited: lock the file there now
            try:
                yield path
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return


# A folder holding this file is complete (an extracted archive, a generated dataset).
COMPLETE_MARKER = ".microspeech-complete"


@contextmanager
def atomic_directory(
    target: str | Path, *, marker: str | None = COMPLETE_MARKER, resume: bool = False, lock: bool = True
) -> Iterator[Path | None]:
    """Build the folder `target` as a whole: lock, build in `<target>.partial`, mark, swap.

    Yields the partial folder to fill, or None when `target` is already complete (`marker` in
    it). On success the marker is written and the partial folder replaces `target` (an old one
    goes to `<target>.old` for the instant of the swap, so a reader finds one or the other). On
    an error the partial folder is removed, unless `resume` keeps it for the next run to
    continue (then a partial folder found at the start is kept too). `lock`: hold
    `<target>.lock` (serializes processes building the same folder).
    """
    target = Path(target)
    if marker and (target / marker).exists():  # a finished folder is read through a link too
        yield None
        return
    if target.is_symlink():
        # Building swaps a whole folder in: through a link it replaced the link with a real folder
        # (and left <target>.old); at the link's target it needs the target's parent (a mount
        # point's is not the user's). Refused, with both ways on.
        where = os.readlink(target)
        raise ValueError(
            f"{target} is a link to {where}"
            + ("" if target.exists() else ", which does not exist")
            + ": a folder is built as a whole and swapped in, which would replace the link; give the "
            "folder it points to, or a new name"
        )
    if target.name in ("", ".", ".."):  # no name to put .partial beside; "." is in use as the cwd
        raise ValueError(f"{target}: name a new folder to build (the current folder cannot be replaced)")
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(target.name + ".lock")
    with exclusive_lock(lock_path) if lock else nullcontext():
        if marker and (target / marker).exists():
            yield None
            return
        partial = target.with_name(target.name + ".partial")
        if not resume:
            shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True, exist_ok=True)
        try:
            yield partial
        except BaseException:
            if not resume:
                shutil.rmtree(partial, ignore_errors=True)
            # The lock file stays: a process waiting on it holds it open, and removing it would let
            # a third one lock a new file and build beside that waiter (an flock file, never stale).
            raise
        if marker:
            (partial / marker).touch()
        previous = target.with_name(target.name + ".old")
        shutil.rmtree(previous, ignore_errors=True)
        if target.exists():
            target.rename(previous)
        partial.rename(target)
        shutil.rmtree(previous, ignore_errors=True)
        if marker and lock:
            # Not left beside the folder: whoever waits on it, or comes later, finds the marker.
            lock_path.unlink(missing_ok=True)


# System temporary folders with short paths, for what must fit a fixed-size buffer.
SHORT_TEMPORARY_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")


def short_temporary_folder(room: int) -> str:
    """The temporary folder if its path leaves `room` bytes under the caller's limit (pass the limit
    minus what goes after it), else the first writable short system one; else the temporary folder."""
    import tempfile

    folder = tempfile.gettempdir()
    if len(os.fsencode(folder)) <= room:
        return folder
    for candidate in SHORT_TEMPORARY_FOLDERS:
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return folder
