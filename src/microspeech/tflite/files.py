"""Read a .tflite from a file: a bare .tflite or an MLTK `.mltk.zip` archive that holds one.

This reads files only; turning a MODEL argument (a name, a folder) into files is
`microspeech.models.resolve_model`'s job.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from microspeech.files import write_bytes_atomic

__all__ = ["TfliteFile", "TfliteFileError", "is_archive_copy", "materialize_tflite", "read_tflite_file"]

class TfliteFileError(ValueError):
    """A file that holds no readable .tflite; the message names it."""


@dataclass(frozen=True)
class TfliteFile:
    """A .tflite's bytes, the model name its file gives, and the file they came from."""

    name: str
    path: Path
    tflite_bytes: bytes = field(repr=False)  # a repr of ~20-90 kB of bytes helps nobody
    from_archive: bool = False  # `path` is a zip archive (whatever its name) holding the .tflite


def read_tflite_file(path: str | Path) -> TfliteFile:
    """The .tflite in `path` (a .tflite file or a zip archive holding one), checked to be a
    well-formed flatbuffer; sizes are capped before anything is read whole."""
    from microspeech.tflite.flatbuffer import (
        TfliteFormatError,
        load_bytes,
        read_archive_member,
        read_file_capped,
    )

    if not str(path).strip():  # Path("") is the current folder, "is a folder" the wrong complaint
        raise TfliteFileError("an empty path: give a .tflite file or an .mltk.zip archive")
    path = Path(path).expanduser()
    try:
        archive = path.is_file() and (path.name.endswith(".zip") or zipfile.is_zipfile(path))
        if archive:
            member, data = read_archive_member(path)
            name = Path(member).stem
        else:
            data = read_file_capped(path, what=".tflite file")
            name = path.name.removesuffix(".tflite")
        return TfliteFile(name, path, load_bytes(data, where=str(path)), from_archive=archive)
    except TfliteFormatError as error:
        message = str(error)
        raise TfliteFileError(message if str(path) in message else f"{path}: {message}") from error
    except PermissionError as error:
        raise TfliteFileError(f"{path}: cannot read it (permission denied)") from error
    except (FileNotFoundError, IsADirectoryError) as error:
        raise TfliteFileError(str(error)) from error


_copies: Path | None = None  # this process's private folder of archive members


def materialize_tflite(tflite: TfliteFile) -> Path:
    """A .tflite path holding these bytes: the file itself, or a copy of an archive's member for
    tools that take a path. Copies go to a folder of this process's own (mode 0700, removed at
    exit): a shared, predictable path in /tmp let another user plant a model under a public
    archive's digest."""
    global _copies
    if not tflite.from_archive:
        return tflite.path
    if _copies is None:
        _copies = Path(tempfile.mkdtemp(prefix="microspeech-archive-"))
        atexit.register(shutil.rmtree, _copies, ignore_errors=True)
    digest = hashlib.sha256(tflite.tflite_bytes).hexdigest()[:16]
    target = _copies / digest / f"{tflite.name}.tflite"
    if not target.is_file():
        target.parent.mkdir(exist_ok=True)
        write_bytes_atomic(target, tflite.tflite_bytes)
    return target


def is_archive_copy(path: Path) -> bool:
    """Whether `path` is a copy `materialize_tflite` made of an archive's member (it goes at exit)."""
    return _copies is not None and _copies in Path(path).parents
