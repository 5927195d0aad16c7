"""Named datasets and `load_dataset`: one entry point for names and paths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from microspeech.data.clips import AudioDataset
from microspeech.data.folder import index_folder

DatasetLoader = Callable[..., AudioDataset]
_REGISTRY: dict[str, DatasetLoader] = {}


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Decorator: `loader(*, download: bool) -> AudioDataset` becomes loadable by `name`."""

    def decorate(loader: DatasetLoader) -> DatasetLoader:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = loader
        return loader

    return decorate


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def load_dataset(name_or_path: str | Path, *, download: bool = True) -> AudioDataset:
    """A registered dataset by name, or a folder on disk (layout detected).

    Names: see `list_datasets()` (speech_commands_v2, speech_commands_test_set_v0.02,
    synthetic, synthetic-tiny). A path holds the Speech Commands v0.02 layout, the
    official test-set layout, or `<root>/<word>/*.wav`.
    """
    key = str(name_or_path)
    if not key.strip():  # Path("") is the current folder, which was indexed as a dataset
        raise ValueError("an empty dataset name: give a registered name or a folder (./ for this one)")
    # A bare registered name wins over a same-named folder in the working directory (write ./NAME).
    if key in _REGISTRY and not isinstance(name_or_path, Path):
        return _REGISTRY[key](download=download)
    path = Path(key).expanduser()
    if path.is_dir():
        return index_folder(path)
    raise ValueError(
        f"unknown dataset {key!r}: expected one of {', '.join(list_datasets())} or an existing folder "
        "(<root>/<word>/*.wav)"
    )


def load_datasets(
    names_or_paths: str | Path | Sequence[str | Path], *, download: bool = True
) -> AudioDataset:
    """Several datasets as one (`AudioDataset.combine`): each clip read from its own root, in its
    own split; background noise from all. One name or folder (alone or in a list) gives that
    dataset itself."""
    if isinstance(names_or_paths, str | Path):  # a string was read as its characters: "/" the root
        names_or_paths = [names_or_paths]
    if not names_or_paths:
        raise ValueError("no dataset given")
    return AudioDataset.combine([load_dataset(item, download=download) for item in names_or_paths])
