"""What training writes beside a model's files (microspeech.models.artifacts): the output
folder, the recorded package versions, and the --resume checkpoint (written atomically)."""

from __future__ import annotations

import json
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.paths import models_dir

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


def save_checkpoint(directory: Path, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
    """Write arrays + JSON state as a whole: the old checkpoint stays until the new one is complete."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with open(partial / "arrays.npz", "wb") as file:
        np.savez(file, **arrays)
    (partial / "state.json").write_text(json.dumps(state, indent=1))
    previous = directory.with_name(directory.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        directory.rename(previous)
    partial.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)


def load_checkpoint(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The last complete checkpoint (falls back to `.old` if a save was interrupted mid-swap)."""
    for folder in (directory, directory.with_name(directory.name + ".old")):
        if (folder / "state.json").is_file() and (folder / "arrays.npz").is_file():
            with np.load(folder / "arrays.npz") as data:
                arrays = {key: data[key] for key in data.files}
            return arrays, json.loads((folder / "state.json").read_text())
    return None
