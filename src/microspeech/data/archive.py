"""Safe, resumable extraction of dataset archives into a cache directory."""

from __future__ import annotations

import lzma
import tarfile
import zlib
from contextlib import contextmanager
from pathlib import Path

from microspeech.files import COMPLETE_MARKER, atomic_directory


class ArchiveError(ValueError):
    """An archive that cannot be extracted (corrupt, cut short, unsafe, a full disk); the message
    names it, and nothing of it is kept."""

__all__ = ["COMPLETE_MARKER", "extract_archive"]


@contextmanager
def _open_for_reading(archive: Path, show_progress: bool):
    if not show_progress:
        with open(archive, "rb") as handle:
            yield handle
        return
    from microspeech.progress import progress_bar

    progress = progress_bar(kind="bytes", only_on_terminal=False)
    with progress, progress.open(archive, "rb", description=f"extracting {archive.name}") as handle:
        yield handle


def _parts(name: str) -> list[str]:
    """An archive path's components, without the empty and "." ones ("./yes/a.wav" -> yes, a.wav)."""
    return [part for part in name.split("/") if part not in ("", ".")]


def _through_links(parts: list[str], links: set[str]) -> bool:
    """Whether a path has ".." or passes through one of the archive's own symlinks."""
    return ".." in parts or any("/".join(parts[:index]) in links for index in range(1, len(parts)))


def _safe_members(tar: tarfile.TarFile, target: Path) -> list[tarfile.TarInfo]:
    """The members, checked as tarfile's `data` filter checks them and stricter: refuse what would
    land outside `target` (absolute paths, `..`, links pointing out, anything through one of the
    archive's own links) and special files; drop set-id bits."""
    root = target.resolve()
    members = []
    links: set[str] = set()  # the archive's own symlinks, which the target does not hold yet
    for member in tar.getmembers():
        destination = (root / member.name).resolve()
        if member.name.startswith("/") or not destination.is_relative_to(root):
            raise tarfile.TarError(f"member {member.name!r} would be extracted outside the target")
        # Resolved against the still-empty folder, lnk/../x looked inside; with the archive's
        # link lnk -> . extracted first, lnk/lnk/../../x landed above it. A name through one of
        # its links, or with "..", is refused (Speech Commands' archives have neither).
        parts = _parts(member.name)
        if _through_links(parts, links):
            raise tarfile.TarError(f"member {member.name!r} would be extracted through a link or '..'")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise tarfile.TarError(f"member {member.name!r} is a special file")
        if member.issym() or member.islnk():
            base = destination.parent if member.issym() else root
            if member.linkname.startswith("/") or not (base / member.linkname).resolve().is_relative_to(root):
                raise tarfile.TarError(f"link {member.name!r} points outside the target")
            # Its target through one of the archive's links, or with "..": resolved against the
            # still-empty folder it looked inside (a hard link to lnk/lnk/../../x reached out).
            if _through_links(_parts(member.linkname), links):
                raise tarfile.TarError(f"link {member.name!r} points through a link or '..'")
        if member.issym():
            links.add("/".join(parts))
        member.mode &= 0o755
        members.append(member)
    return members


def extract_archive(archive: str | Path, target_dir: str | Path, *, show_progress: bool = False) -> Path:
    """Extract `archive` into `target_dir` once and return `target_dir`.

    `show_progress` draws a bar over the compressed bytes read (the 2.3 GB dataset takes minutes).

    Extraction goes to a temporary sibling and is renamed into place only when
    complete, so an interrupted run never leaves a directory that looks finished.
    tarfile's `data` filter refuses members that would land outside the target
    (absolute paths, `..`, links pointing out) and special files.
    """
    archive = Path(archive)
    target_dir = Path(target_dir)
    if (target_dir / COMPLETE_MARKER).exists():
        return target_dir
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    with atomic_directory(target_dir) as partial:
        if partial is None:  # another process finished it while this one waited
            return target_dir
        try:
            with _open_for_reading(archive, show_progress) as source, tarfile.open(fileobj=source) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(partial, filter="data")
                else:  # Python < 3.11.4 (e.g. Debian 12's 3.11.2) has no extraction filters
                    tar.extractall(partial, members=_safe_members(tar, partial))
                # tarfile stops at the end-of-archive blocks: the compressed stream's own check (the
                # gzip CRC after them) is read only here, so damaged data cannot pass as complete.
                while tar.fileobj.read(1 << 20):
                    pass
        # KeyError: a hard link whose target the archive lacks; zlib/lzma: damaged compressed data.
        except (tarfile.TarError, OSError, EOFError, KeyError, zlib.error, lzma.LZMAError) as error:
            raise ArchiveError(f"{archive}: extraction failed ({error}); nothing was kept") from error
        # An archive may wrap the dataset in one top-level folder: unwrapped, so target_dir is the
        # dataset root. Not a word folder (audio directly in it): "yes/*.wav" alone lost its label.
        entries = list(partial.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and not _holds_audio(entries[0]):
            wrapper = entries[0].rename(partial / ".microspeech-unwrap")
            for item in wrapper.iterdir():
                item.rename(partial / item.name)
            wrapper.rmdir()
    return target_dir


def _holds_audio(folder: Path) -> bool:
    from microspeech.data.clips import AUDIO_EXTENSIONS

    return any(path.suffix.lower() in AUDIO_EXTENSIONS for path in folder.iterdir() if path.is_file())
