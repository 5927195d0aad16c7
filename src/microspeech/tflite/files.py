"""Read a .tflite from a file: a bare .tflite or an MLTK `.mltk.zip` archive that holds one.

This reads files only; turning a MODEL argument (a name, a folder) into files is
`microspeech.models.resolve_model`'s job.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from microspeech.files import write_bytes_atomic

__all__ = ["TfliteFile", "TfliteFileError", "read_tflite_file", "materialize_tflite"]

class TfliteFileError(ValueError):
    """A file that holds no readable .tflite; the message names it."""


@dataclass(frozen=True)
class TfliteFile:
    """A .tflite's bytes, the model name its file gives, and the file they came from."""

    name: str
    path: Path
    tflite_bytes: bytes = field(repr=False)  # a repr of ~20-90 kB of bytes helps nobody

    @property
    def from_archive(self) -> bool:
        return self.path.suffix != ".tflite"


def read_tflite_file(path: str | Path) -> TfliteFile:
    """The .tflite in `path` (a .tflite file or a zip archive holding one), checked to be a
    well-formed flatbuffer; sizes are capped before anything is read whole."""
    from microspeech.tflite.flatbuffer import (
        TfliteFormatError,
        load_bytes,
        read_archive_member,
        read_file_capped,
    )

    path = Path(path).expanduser()
    try:
        if path.is_file() and (path.name.endswith(".zip") or zipfile.is_zipfile(path)):
            member, data = read_archive_member(path)
            name = Path(member).stem
        else:
            data = read_file_capped(path, what=".tflite file")
            name = path.name.removesuffix(".tflite")
        return TfliteFile(name, path, load_bytes(data, where=str(path)))
    except TfliteFormatError as error:
        message = str(error)
        raise TfliteFileError(message if str(path) in message else f"{path}: {message}") from error
    except PermissionError as error:
        raise TfliteFileError(f"{path}: cannot read it (permission denied)") from error
    except (FileNotFoundError, IsADirectoryError) as error:
        raise TfliteFileError(str(error)) from error


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
