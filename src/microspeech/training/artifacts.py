"""What training writes beside a model's files (microspeech.models.artifacts): the output
folder (and its lock), the recorded package versions, and the --resume checkpoint (written
atomically, read back with every failure named)."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.files import LockedError, atomic_directory, exclusive_lock
from microspeech.paths import models_dir

# Held by a training for its whole run: a second one into the same --output fails at once.
TRAINING_LOCK = ".training.lock"
# What `_fit` reads back from a checkpoint's state.json.
CHECKPOINT_STATE_KEYS = frozenset(
    {"model", "seed", "dataset_fingerprint", "epoch", "stopped", "reduce_lr", "early_stopping", "history"}
)


class ResumeError(RuntimeError):
    """A checkpoint that cannot be resumed: unreadable, or of another seed, dataset or model."""

RECORDED_PACKAGES = (
    "microspeech",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "numba",
    "ai-edge-litert",
    "tflite-micro",
)


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def model_directory(name: str, output: str | Path | None = None) -> Path:
    return Path(output).expanduser() if output is not None else models_dir() / name


@contextmanager
def output_lock(directory: Path) -> Iterator[Path]:
    """Hold `directory`'s training lock for the block, or raise `LockedError` naming the folder.

    A folder this call created is removed again when the block fails before anything but the
    lock was written (a refused dataset leaves no empty output folder behind).
    """
    directory = Path(directory)
    created = not directory.exists()
    lock = exclusive_lock(directory / TRAINING_LOCK, wait=False)
    try:
        lock.__enter__()
    except LockedError:
        raise LockedError(
            f"--output {directory}: another training is writing to this folder; wait for it to "
            "finish or choose another --output"
        ) from None
    try:
        yield directory
    except BaseException:
        if created and all(entry.name == TRAINING_LOCK for entry in directory.iterdir()):
            shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        # Removed while still held, so a finished run's folder holds only its files: no training
        # waits on this lock (a second one is refused at once), and one that opened the file just
        # before finds it gone after winning it and locks the file at the path (exclusive_lock).
        (directory / TRAINING_LOCK).unlink(missing_ok=True)
        lock.__exit__(None, None, None)


def save_checkpoint(directory: Path, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
    """Write arrays + JSON state as a whole: the old checkpoint stays until the new one is complete."""
    # No lock of its own: the training holds its output folder's lock.
    with atomic_directory(directory, marker=None, lock=False) as partial:
        assert partial is not None
        with open(partial / "arrays.npz", "wb") as file:
            np.savez(file, **arrays)
        (partial / "state.json").write_text(json.dumps(state, indent=1))


def load_checkpoint(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The last complete checkpoint (falls back to `.old` if a save was interrupted mid-swap)."""
    for folder in (directory, directory.with_name(directory.name + ".old")):
        if (folder / "state.json").is_file() and (folder / "arrays.npz").is_file():
            return _read_checkpoint(folder)
    return None


def _read_checkpoint(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    start_over = "train without --resume to start over"
    state_path, arrays_path = folder / "state.json", folder / "arrays.npz"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResumeError(f"{state_path}: not a readable checkpoint state ({error}); {start_over}") from None
    missing = CHECKPOINT_STATE_KEYS - set(state) if isinstance(state, dict) else CHECKPOINT_STATE_KEYS
    if missing:
        raise ResumeError(
            f"{state_path}: not a checkpoint state (no {', '.join(sorted(missing))}); {start_over}"
        )
    try:
        with np.load(arrays_path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ResumeError(
            f"{arrays_path}: not a readable checkpoint ({type(error).__name__}: {error}); {start_over}"
        ) from None
    return arrays, state
