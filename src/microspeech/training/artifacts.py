"""Where a trained model's files live, how they are written (atomically) and found again.

<models_dir()>/<name>/  (or --output)
    <name>.keras  <name>.tflite  history.csv  logs/  train.log  manifest.json
    checkpoint/   (last finished epoch, for --resume)   eval/  (written by evaluation)
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from microspeech.files import write_text_atomic
from microspeech.paths import models_dir

if TYPE_CHECKING:
    from microspeech.models.spec import ModelSpec

MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint"
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


@dataclass
class ModelArtifacts:
    """The files of one trained model; `spec` comes from the registry or the manifest."""

    directory: Path
    name: str

    @property
    def keras_path(self) -> Path:
        return self.directory / f"{self.name}.keras"

    @property
    def tflite_path(self) -> Path:
        return self.directory / f"{self.name}.tflite"

    @property
    def history_path(self) -> Path:
        return self.directory / "history.csv"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def train_log_path(self) -> Path:
        return self.directory / "train.log"

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    @property
    def checkpoint_dir(self) -> Path:
        return self.directory / CHECKPOINT

    @property
    def eval_dir(self) -> Path:
        return self.directory / "eval"

    @property
    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            return {}
        return json.loads(self.manifest_path.read_text())

    @property
    def spec(self) -> ModelSpec:
        """The registered spec of this name, else the one recorded in the manifest (no builder)."""
        from microspeech.models import ModelSpec, get_model_spec

        recorded = self.manifest.get("spec")
        try:
            registered = get_model_spec(self.name)
        except KeyError:
            if recorded is None:
                raise KeyError(
                    f"model {self.name!r} is not registered and {self.manifest_path} is missing"
                ) from None
            return ModelSpec.from_dict(recorded, build=_no_builder)
        if recorded is None:
            return registered
        # Keep the trained classes/frontend/settings even if the registry changed since.
        return ModelSpec.from_dict(recorded, build=registered.build)

    def write_manifest(self, values: dict[str, Any]) -> None:
        write_text_atomic(
            self.manifest_path, json.dumps(values, indent=2, sort_keys=True, default=str) + "\n"
        )


def _no_builder(spec: ModelSpec) -> Any:
    raise KeyError(f"model {spec.name!r} is not registered: cannot rebuild it, only load its files")


def model_directory(name: str, output: str | Path | None = None) -> Path:
    return Path(output).expanduser() if output is not None else models_dir() / name


def resolve_model(name_or_path: str | Path) -> ModelArtifacts:
    """A trained model by name (models_dir()/NAME), directory, or .keras/.tflite file path."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file() and candidate.suffix in (".keras", ".tflite"):
        return ModelArtifacts(candidate.parent, candidate.stem)
    if candidate.is_dir():
        manifest = candidate / MANIFEST
        if manifest.is_file():
            return ModelArtifacts(candidate, json.loads(manifest.read_text())["name"])
        found = sorted(candidate.glob("*.tflite")) or sorted(candidate.glob("*.keras"))
        if found:
            return ModelArtifacts(candidate, found[0].stem)
        raise FileNotFoundError(f"{candidate}: no manifest.json, .tflite or .keras model in this folder")
    directory = models_dir() / str(name_or_path)
    if directory.is_dir():
        return resolve_model(directory)
    raise FileNotFoundError(
        f"no trained model {str(name_or_path)!r}: not a file or folder, and {directory} does not exist "
        f"(train it with `microspeech train {name_or_path}`)"
    )


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
