"""Read a .tflite from a file: a bare .tflite or an MLTK `.mltk.zip` archive that holds one.

This reads files only; turning a MODEL argument (a name, a folder) into files is
`microspeech.models.resolve_model`'s job.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from microspeech.files import write_bytes_atomic

__all__ = ["TfliteFile", "TfliteFileError", "read_tflite_file", "materialize_tflite"]

# A keyword model is kilobytes; an archive member claiming more is refused before it is read.
MAX_TFLITE_BYTES = 64 * 1024 * 1024


class TfliteFileError(ValueError):
    """A file that holds no readable .tflite; the message names it."""


@dataclass(frozen=True)
class TfliteFile:
    """A .tflite's bytes, the model name its file gives, and the file they came from."""

    name: str
    path: Path
    tflite_bytes: bytes

    @property
    def from_archive(self) -> bool:
        return self.path.suffix != ".tflite"


def _from_zip(path: Path) -> TfliteFile:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if info.filename.endswith(".tflite")]
            if not members:
                raise TfliteFileError(f"{path}: the archive holds no .tflite model")
            # MLTK archives hold <name>.tflite at the top; prefer that over nested copies.
            member = min(members, key=lambda info: (info.filename.count("/"), info.filename))
            if member.file_size > MAX_TFLITE_BYTES:
                raise TfliteFileError(
                    f"{path}: {member.filename} claims {member.file_size:,} bytes "
                    f"(more than {MAX_TFLITE_BYTES:,}); not a keyword model"
                )
            return TfliteFile(Path(member.filename).stem, path, archive.read(member))
    except (zipfile.BadZipFile, EOFError) as error:
        raise TfliteFileError(f"{path}: not a readable zip archive ({error})") from error


def read_tflite_file(path: str | Path) -> TfliteFile:
    """The .tflite in `path` (a .tflite file or a zip archive holding one)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise TfliteFileError(f"{path}: is a folder, not a .tflite file")
    if not path.is_file():
        raise TfliteFileError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            return _from_zip(path)
        size = path.stat().st_size
        if size > MAX_TFLITE_BYTES:
            raise TfliteFileError(
                f"{path}: {size:,} bytes, more than {MAX_TFLITE_BYTES:,}; not a keyword model"
            )
        return TfliteFile(path.name.removesuffix(".tflite"), path, path.read_bytes())
    except PermissionError as error:
        raise TfliteFileError(f"{path}: cannot read it (permission denied)") from error


def materialize_tflite(tflite: TfliteFile) -> Path:
    """A .tflite path holding these bytes: the file itself, or a copy of an archive's member
    (in the temporary folder, named by content) for tools that take a path."""
    if not tflite.from_archive:
        return tflite.path
    digest = hashlib.sha256(tflite.tflite_bytes).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"microspeech-{digest}" / f"{tflite.name}.tflite"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, tflite.tflite_bytes)
    return target
