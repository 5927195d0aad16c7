"""A trained model's files, and the one resolver every command uses for its MODEL argument.

<models_dir()>/<name>/  (or train --output)
    <name>.keras  <name>.tflite  history.csv  logs/  train.log  manifest.json
    checkpoint/   (last finished epoch, for --resume)   eval/  (written by evaluation)

`resolve_model` accepts a trained model's name, its folder, a `.keras`, a `.tflite`, an
MLTK `.mltk.zip` or the spec file (`.py`) it was trained from, and returns a `ResolvedModel`:
where the files are, the .tflite bytes and parameters, and the classes and frontend settings
(from the .tflite's parameters when there is one, else from the spec the manifest recorded).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microspeech.files import write_text_atomic
from microspeech.paths import models_dir

if TYPE_CHECKING:
    from microspeech.frontend import FrontendSettings
    from microspeech.models.spec import ModelSpec
    from microspeech.tflite.files import TfliteFile

__all__ = ["MANIFEST", "ModelArtifacts", "ModelResolutionError", "ResolvedModel", "resolve_model"]

MANIFEST = "manifest.json"
# The first line of a train.log ("2026-12-06 20:59:17,965 INFO train NAME on ...").
_LOG_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \w+ ")
# How the history.csv that training writes begins (training.trainer.HISTORY_COLUMNS).
HISTORY_START = "epoch,loss,accuracy,"
CHECKPOINT = "checkpoint"
# A Keras model file: .keras, or the legacy HDF5 .h5 that MLTK saves beside its .tflite.
KERAS_SUFFIXES = (".keras", ".h5")
MODEL_SUFFIXES = (".tflite", *KERAS_SUFFIXES, ".zip")


class ModelResolutionError(ValueError):
    """A MODEL argument that names no usable model; the message names it and what was looked for."""


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
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelResolutionError(f"{self.manifest_path}: unreadable manifest ({error})") from error
        if not isinstance(manifest, dict):
            raise ModelResolutionError(f"{self.manifest_path}: not a manifest (a JSON object expected)")
        return manifest

    @property
    def spec(self) -> ModelSpec:
        """The registered spec of this name, else the one recorded in the manifest (no builder)."""
        from microspeech.models.registry import ModelFileError, get_model_spec

        recorded = self.manifest.get("spec")
        try:
            registered = get_model_spec(self.name)
        except KeyError:
            if recorded is None:
                raise KeyError(
                    f"model {self.name!r} is not registered and {self.manifest_path} is missing"
                ) from None
            return self._recorded_spec(recorded, _no_builder)
        except ModelFileError:
            # A broken spec file on the search path (maybe another model's): a trained model's
            # manifest still says what it is; only training it again needs the file.
            if recorded is None:
                raise
            return self._recorded_spec(recorded, _no_builder)
        if recorded is None:
            return registered
        # Keep the trained classes/frontend/settings even if the registry changed since.
        return self._recorded_spec(recorded, registered.build)

    def _recorded_spec(self, recorded: Any, build: Any) -> ModelSpec:
        """The manifest's spec; one edited by hand into another shape (a string, a number of
        classes) is a ValueError naming the manifest (it was a TypeError traceback)."""
        from microspeech.models.spec import ModelSpec

        try:
            return ModelSpec.from_dict(recorded, build=build)
        except (TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"{self.manifest_path}: its 'spec' cannot be read ({error})") from None

    @property
    def log_written_by_training(self) -> bool:
        """train.log is a file whose first line is one `train` logs ("2026-12-06 20:59:17,965 INFO ...")."""
        return _LOG_START.match(_first_line(self.train_log_path)) is not None

    @property
    def history_written_by_training(self) -> bool:
        """history.csv is a file whose header starts as `train` writes it (Keras' CSVLogger writes
        "epoch,accuracy,...": a user's own table)."""
        return _first_line(self.history_path).startswith(HISTORY_START)

    @property
    def manifest_written_by_training(self) -> bool:
        """manifest.json is a JSON object that records a spec (a web project's manifest.json is none)."""
        try:
            values = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # ValueError: bad UTF-8, JSON, a 5000-digit number
            return False
        return isinstance(values, dict) and "spec" in values

    def write_manifest(self, values: dict[str, Any]) -> None:
        write_text_atomic(
            self.manifest_path, json.dumps(values, indent=2, sort_keys=True, default=str) + "\n"
        )


def _first_line(path: Path) -> str:
    """The file's first line, "" for a folder or a file that cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.readline(4096).decode("utf-8", "replace")
    except OSError:
        return ""


def _no_builder(spec: ModelSpec) -> Any:
    raise KeyError(f"model {spec.name!r} is not registered: cannot rebuild it, only load its files")


@dataclass(frozen=True)
class ResolvedModel:
    """What a MODEL argument names: its files, .tflite bytes and parameters, classes and frontend."""

    name: str
    argument: str
    directory: Path | None
    keras_path: Path | None
    tflite: TfliteFile | None
    parameters: dict[str, Any]
    classes: list[str]
    # None when the .tflite's fe.* parameters are unusable: `frontend` then says why, and only
    # what needs the frontend stops (params, summarize, profile still inspect the model).
    frontend_settings: FrontendSettings | None
    spec: ModelSpec | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    # Why the .tflite beside a Keras model could not be read (require_tflite says it), else None.
    tflite_problem: str | None = None
    frontend_problem: str | None = None
    # Why the manifest beside a .tflite given as a file was not read (the file was taken alone).
    ignored_manifest: str | None = None

    @property
    def frontend(self) -> FrontendSettings:
        """The frontend the model was trained with; ModelResolutionError naming the file when its
        stored settings are unusable."""
        if self.frontend_settings is None:
            raise ModelResolutionError(self.frontend_problem or f"{self.argument}: no frontend settings")
        return self.frontend_settings

    @property
    def tflite_path(self) -> Path | None:
        """The .tflite file, or the archive that holds it."""
        return self.tflite.path if self.tflite else None

    @property
    def tflite_bytes(self) -> bytes | None:
        return self.tflite.tflite_bytes if self.tflite else None

    @property
    def artifacts(self) -> ModelArtifacts | None:
        return ModelArtifacts(self.directory, self.name) if self.directory is not None else None

    @property
    def unfinished_run(self) -> bool:
        """A training folder whose run never wrote its manifest (interrupted, or failed after the
        model was saved): its .tflite may lack the calibrated detection parameters."""
        return (
            self.directory is not None
            and not self.manifest
            and (self.directory / "train.log").is_file()
        )

    @property
    def training_dataset(self) -> str | None:
        """The dataset the model was trained on, as its manifest records it (None if unknown)."""
        dataset = self.manifest.get("dataset")
        if isinstance(dataset, dict):
            from microspeech.data import list_datasets

            # A registered name loads anywhere; a folder dataset is found again by its root.
            name = dataset.get("name")
            dataset = name if name in list_datasets() else dataset.get("root") or name
        return str(dataset) if dataset else None

    @property
    def trim_threshold_db(self) -> float:
        """How training trimmed its clips (the spec's setting), so evaluation trims the same way."""
        from microspeech.data.settings import AugmentationSettings

        settings = self.spec.augmentation if self.spec is not None else AugmentationSettings()
        return float(settings.trim_threshold_db)

    def require_tflite(self) -> TfliteFile:
        if self.tflite_problem is not None:
            raise ModelResolutionError(self.tflite_problem)
        if self.tflite is None:
            import shlex

            from microspeech.models.registry import list_models

            # A folder elsewhere than the name's own: `train NAME` alone would train into that one.
            own = (models_dir() / self.name).resolve()
            elsewhere = self.directory is not None and self.directory.resolve() != own
            output = f" --output {shlex.quote(str(self.directory))}" if elsewhere else ""
            expected = f" (expected {self.directory / (self.name + '.tflite')})" if self.directory else ""
            if self.keras_path is not None and self.keras_path.suffix == ".h5":
                # MLTK's Keras file: training ours into its folder would not quantize it.
                raise ModelResolutionError(
                    f"model {self.argument!r}: {self.keras_path.name} is MLTK's float Keras model and no "
                    f"quantized .tflite is beside it{expected}; give the .tflite MLTK wrote with it "
                    "(its .mltk.zip archive holds both)"
                )
            if self.spec is None and self.name.removesuffix("-test") not in list_models():
                # No spec to train it from: `train NAME` would only say the name is unknown.
                raise ModelResolutionError(
                    f"model {self.argument!r} has no quantized .tflite{expected}; `microspeech train` "
                    "writes one beside the .keras, for a registered model or a spec file of your own "
                    "(see `microspeech list` and `microspeech new-model`)"
                )
            raise ModelResolutionError(
                f"model {self.argument!r} has no quantized .tflite yet{expected}; train it first: "
                f"microspeech train {self.name}{output} (with --resume when its checkpoint is there)"
            )
        return self.tflite

    def require_keras(self) -> Path:
        if self.keras_path is None:
            raise ModelResolutionError(
                f"model {self.argument!r} has no .keras model"
                + (" (an archive or a bare .tflite holds only the int8 model)" if self.tflite else "")
            )
        return self.keras_path

    def require_classes(self) -> list[str]:
        if not self.classes:
            raise ModelResolutionError(
                f"{self.tflite_path or self.directory}: no 'classes' in its embedded parameters "
                "(SL_PARAMSv1) and no manifest naming them"
                + (f" (its .tflite could not be read: {self.tflite_problem})" if self.tflite_problem else "")
            )
        return self.classes

    def require_raw_features(self) -> None:
        """Refuse models that normalise each spectrogram first: our features go in as raw int8."""
        keys = ("samplewise_norm.rescale", "samplewise_norm.mean_and_std")
        if any(self.parameters.get(key) for key in keys):
            raise ModelResolutionError(
                f"{self.tflite_path}: models with samplewise_norm.* input normalisation are not supported"
            )


def _load_tflite(path: Path) -> tuple[TfliteFile, dict[str, Any]]:
    from microspeech.tflite.files import TfliteFileError, read_tflite_file
    from microspeech.tflite.metadata import read_parameters

    try:
        tflite = read_tflite_file(path)
        parameters = read_parameters(tflite.tflite_bytes)
    except (TfliteFileError, ValueError) as error:
        raise ModelResolutionError(str(error) if str(path) in str(error) else f"{path}: {error}") from error
    return tflite, parameters


def _folder_model_name(folder: Path) -> str:
    artifacts = ModelArtifacts(folder, folder.name)
    name = artifacts.manifest.get("name")
    if isinstance(name, str) and name:
        return name
    stem = folder.name
    for pattern in (f"{stem}.tflite", "*.tflite", f"{stem}.keras", "*.keras", f"{stem}.h5", "*.h5"):
        found = sorted(path for path in folder.glob(pattern) if path.is_file())
        if len(found) > 1:  # the first by name would be a guess
            raise ModelResolutionError(
                f"{folder}: holds {len(found)} models ({', '.join(path.name for path in found)}) and no "
                "manifest.json naming one; give the file itself"
            )
        if found:
            return found[0].name.removesuffix(found[0].suffix)
    raise ModelResolutionError(f"{folder}: no manifest.json, .tflite, .keras or .h5 model in this folder")


def _spec_file_model(path: Path) -> tuple[Path, str]:
    """A spec file's trained model: (models_dir()/NAME, NAME) for the one model it registers."""
    from microspeech.models.registry import ModelFileError, spec_file_model_name

    try:
        name = spec_file_model_name(path)
    except ModelFileError as error:
        raise ModelResolutionError(str(error)) from error
    directory = models_dir() / name
    if not directory.is_dir():
        raise ModelResolutionError(
            f"model {name!r} of {path} is not trained yet: {directory} does not exist; "
            f"train it with `microspeech train {path}` (or name a trained folder)"
        )
    _check_trained_from(path, name, directory)
    return directory, _folder_model_name(directory)


def _check_trained_from(path: Path, name: str, directory: Path) -> None:
    """The trained folder of a spec file's name holds a model of that file's spec: two projects'
    models/kws.py share ~/.microspeech/models/kws, and the other one's model (other classes) was
    used without a word. Compared as the manifest records a spec (its layers are not: build() is
    code)."""
    import json

    from microspeech.models.registry import ModelFileError, get_model_spec

    recorded = ModelArtifacts(directory, name).manifest.get("spec")
    if not isinstance(recorded, dict):
        return
    try:
        current = json.loads(json.dumps(get_model_spec(name).to_dict(), default=str))
    except (ModelFileError, KeyError):  # a spec function that fails now: the trained model stays usable
        return
    # What the model is, not how it was trained (train --epochs and --max-fa-per-hour change those).
    differ = [key for key in ("classes", "frontend") if recorded.get(key) != current.get(key)]
    if differ:
        shown = f"classes {recorded.get('classes')}" if "classes" in differ else ", ".join(differ)
        raise ModelResolutionError(
            f"{directory} holds model {name!r} trained from another spec than {path} ({shown}, where "
            f"{path} says {current.get('classes') if 'classes' in differ else 'otherwise'}); train "
            f"{path} again (`microspeech train {path}`), or give that folder itself"
        )


def resolve_model(model: str | Path) -> ResolvedModel:
    """The model a MODEL argument names: a trained model's name (models_dir()/NAME), its folder,
    a .keras or .tflite file, an archive (.mltk.zip) holding a .tflite, or a spec file (.py)
    whose model was trained into models_dir()/NAME."""
    from microspeech.frontend import FrontendSettings
    from microspeech.tflite.metadata import classes_from_parameters

    argument = str(model)
    if not argument.strip():  # Path("") is the current folder: an unset shell variable, not a model
        raise ModelResolutionError("an empty MODEL argument; give a model name, folder or file")
    path = Path(model).expanduser()
    directory: Path | None = None
    keras_path: Path | None = None
    tflite_path: Path | None = None
    ignored_manifest: str | None = None
    if path.suffix == ".py":
        directory, name = _spec_file_model(path)
    elif path.is_dir():
        directory = path
        name = _folder_model_name(path)
    elif path.is_file():
        if path.suffix in KERAS_SUFFIXES:
            directory, name, keras_path = path.parent, path.stem, path
        elif path.suffix == ".tflite" or path.name.endswith(".zip"):
            tflite_path = path
            name = path.name.removesuffix(".zip").removesuffix(".mltk").removesuffix(".tflite")
            # A .tflite inside a trained model's folder belongs to that model.
            in_folder = path.with_suffix(".keras").is_file() or (path.parent / MANIFEST).is_file()
            if path.suffix == ".tflite" and in_folder:
                directory = path.parent
                try:
                    _ = ModelArtifacts(directory, name).manifest
                except ModelResolutionError as error:
                    # The file given holds what the commands need: a damaged manifest beside it
                    # stops a folder or name, not the file itself, which is read as a bare .tflite.
                    directory, ignored_manifest = None, str(error)
        else:
            raise ModelResolutionError(
                f"{path}: not a model file (.tflite, .keras, .h5 or .mltk.zip expected)"
            )
    elif path.exists():  # a FIFO, a device: "no such file" would be untrue
        raise ModelResolutionError(f"{path}: not a regular file or folder")
    elif path.suffix in MODEL_SUFFIXES or len(path.parts) > 1:
        raise ModelResolutionError(f"{path}: no such model file or folder")
    else:
        directory = models_dir() / argument
        if not directory.is_dir():
            from microspeech.models.registry import list_models

            hint = (
                f"train it with `microspeech train {argument}`"
                if argument.removesuffix("-test") in list_models()
                else f"registered models: {', '.join(list_models())}"
            )
            raise ModelResolutionError(
                f"no trained model {argument!r}: not a file or folder, and {directory} "
                f"does not exist ({hint})"
            )
        name = _folder_model_name(directory)

    spec = None
    manifest: dict[str, Any] = {}
    if directory is not None:
        artifacts = ModelArtifacts(directory, name)
        manifest = artifacts.manifest
        if keras_path is None and artifacts.keras_path.is_file():
            keras_path = artifacts.keras_path
        elif keras_path is None and (directory / f"{name}.h5").is_file():  # MLTK's folder layout
            keras_path = directory / f"{name}.h5"
        if tflite_path is None and artifacts.tflite_path.is_file():
            tflite_path = artifacts.tflite_path
        try:
            spec = artifacts.spec
        except KeyError:
            spec = None
        except ValueError as error:
            raise ModelResolutionError(str(error)) from error
    tflite, parameters, tflite_problem = None, {}, None
    if tflite_path is not None:
        try:
            tflite, parameters = _load_tflite(tflite_path)
        except ModelResolutionError as error:
            if keras_path is None or tflite_path == path:
                raise
            # A bad .tflite beside a Keras model given or trained (whose spec, if any, gives classes
            # and frontend) stops only what needs the .tflite.
            tflite_problem = str(error)
    if tflite is None and keras_path is None:
        raise ModelResolutionError(f"{directory}: holds no {name}.tflite and no {name}.keras")

    # Empty when neither the .tflite nor a manifest names them: `require_classes` says so.
    classes = classes_from_parameters(parameters) or (list(spec.classes) if spec else [])
    frontend, frontend_problem = None, None
    try:
        if any(key.startswith("fe.") for key in parameters):
            frontend = FrontendSettings.from_dict(parameters)
        elif spec is not None:
            frontend = spec.frontend
        elif tflite_problem is None:
            frontend = FrontendSettings()  # a bare .tflite without fe.* parameters: MLTK's
        else:  # its settings were in the .tflite that could not be read: not MLTK's by default
            frontend_problem = f"no frontend settings: {tflite_problem}"
    except ValueError as error:
        frontend_problem = f"{tflite_path}: bad frontend settings in its parameters ({error})"
    return ResolvedModel(
        name=str(parameters.get("name") or (spec.name if spec else name)),
        argument=argument,
        directory=directory,
        keras_path=keras_path,
        tflite=tflite,
        parameters=parameters,
        classes=classes,
        frontend_settings=frontend,
        spec=spec,
        manifest=manifest,
        tflite_problem=tflite_problem,
        frontend_problem=frontend_problem,
        ignored_manifest=ignored_manifest,
    )
