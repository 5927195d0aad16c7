"""Turn a MODEL argument (a .tflite/.keras path or a trained model's name) into a file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

ModelKind = Literal["tflite", "keras"]


class ModelNotFoundError(FileNotFoundError):
    """The MODEL argument names no file and no trained model."""


def resolve_model_file(model: str | Path, kind: ModelKind = "tflite") -> Path:
    """The `kind` file of `model`: the path itself when it is one, else the trained model's artifact.

    A path's suffix decides its kind (.tflite or .keras/.h5); a name or a model folder is
    looked up with `microspeech.training.resolve_model` (artifacts under models_dir()/<name>/).
    """
    path = Path(model).expanduser()
    if path.suffix in (".tflite", ".keras", ".h5") or path.suffix == ".zip":
        if path.is_dir():
            raise ModelNotFoundError(f"{path}: is a folder, not a model file")
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: no such model file")
        return path
    try:
        from microspeech.training import resolve_model
    except ImportError as error:
        raise ModelNotFoundError(
            f"{model!r} is not a .tflite/.keras file and model names cannot be resolved here ({error})"
        ) from error
    try:
        artifacts = resolve_model(str(model))
    except (FileNotFoundError, KeyError, ValueError) as error:
        raise ModelNotFoundError(
            f"{model!r} is neither a .tflite/.keras file nor a trained model ({error})"
        ) from error
    found = Path(artifacts.tflite_path if kind == "tflite" else artifacts.keras_path)
    if not found.is_file():
        raise ModelNotFoundError(
            f"model {model!r} has no {kind} file yet ({found}); train it first: microspeech train {model}"
        )
    return found
