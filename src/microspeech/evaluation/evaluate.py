"""Clip evaluation of a trained model: score every test clip once, compute MLTK's metrics, write a report.

`evaluate_model` takes a model name, a model directory, a `.keras` file or a bare `.tflite`
file. The float model runs in Keras (its input is the int8 features as float32, as in
training); the int8 model runs in LiteRT or TFLM through `TfliteRunner`, its int8 scores
dequantized with the output scale and zero point. Both are scored on the same feature
array, built once, so float and int8 see identical inputs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from microspeech.evaluation.metrics import compute_metrics
from microspeech.evaluation.plots import PLOTS, write_plots
from microspeech.evaluation.report import EvaluationReport, VariantResult, write_results

if TYPE_CHECKING:
    from microspeech.frontend import FrontendSettings

# Without a recorded training dataset, score on the official Speech Commands test set.
DEFAULT_TEST_DATASET = "speech_commands_test_set_v0.02"
VARIANTS = ("float", "int8")
# Samples per call into an interpreter between progress-bar updates.
_CHUNK = 64


class EvaluationError(ValueError):
    """A model or dataset that cannot be evaluated; the message names the file or option."""


@dataclass(frozen=True)
class ModelUnderTest:
    """What `evaluate_model` resolved MODEL to."""

    name: str
    model_dir: Path | None
    keras_path: Path | None
    tflite_path: Path | None
    classes: list[str]
    frontend: FrontendSettings
    training_dataset: str | None


def _manifest_dataset(directory: Path) -> str | None:
    """The dataset the model was trained on, as recorded in its manifest.json (if any)."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise EvaluationError(f"{manifest_path}: unreadable manifest ({error})") from error
    dataset = manifest.get("dataset")
    if isinstance(dataset, dict):
        from microspeech.data import list_datasets

        # A registered name loads anywhere; a folder dataset is found again by its root.
        name = dataset.get("name")
        dataset = name if name in list_datasets() else dataset.get("root") or name
    return str(dataset) if dataset else None


def _from_tflite(path: Path) -> ModelUnderTest:
    from microspeech.frontend import FrontendSettings
    from microspeech.tflite.metadata import read_parameters

    try:
        parameters = read_parameters(path)
    except (OSError, ValueError) as error:
        raise EvaluationError(f"{path}: cannot read its embedded parameters ({error})") from error
    classes = parameters.get("classes")
    if isinstance(classes, str):
        classes = [name.strip() for name in classes.split(",") if name.strip()]
    if not classes:
        raise EvaluationError(
            f"{path}: no 'classes' in its embedded parameters (SL_PARAMSv1); "
            "evaluate the model directory or name instead"
        )
    # MLTK models may normalise each spectrogram before the model; our features are raw int8.
    if parameters.get("samplewise_norm.rescale") or parameters.get("samplewise_norm.mean_and_std"):
        raise EvaluationError(f"{path}: models with samplewise_norm.* input normalisation are not supported")
    try:
        frontend = FrontendSettings.from_dict(parameters)
    except ValueError as error:
        raise EvaluationError(f"{path}: bad frontend settings in its parameters ({error})") from error
    return ModelUnderTest(
        name=str(parameters.get("name") or path.stem),
        model_dir=None,
        keras_path=None,
        tflite_path=path,
        classes=list(classes),
        frontend=frontend,
        training_dataset=_manifest_dataset(path.parent),
    )


def resolve_model_under_test(model: str | Path) -> ModelUnderTest:
    """A bare .tflite (classes and frontend from its metadata), or anything `resolve_model` accepts."""
    path = Path(model).expanduser()
    if path.suffix in (".tflite", ".zip"):  # a bare .tflite, or MLTK's .mltk.zip holding one
        if not path.is_file():
            raise EvaluationError(f"{path}: no such {path.suffix} file")
        return _from_tflite(path)

    from microspeech.training import resolve_model

    try:
        artifacts = resolve_model(model)
    except (FileNotFoundError, KeyError, ValueError) as error:
        raise EvaluationError(f"MODEL {model}: {error}") from error
    keras_path = Path(artifacts.keras_path) if artifacts.keras_path else None
    tflite_path = Path(artifacts.tflite_path) if artifacts.tflite_path else None
    if path.suffix == ".keras":
        keras_path, tflite_path = path, None
    return ModelUnderTest(
        name=artifacts.spec.name,
        model_dir=Path(artifacts.directory),
        keras_path=keras_path if keras_path and keras_path.is_file() else None,
        tflite_path=tflite_path if tflite_path and tflite_path.is_file() else None,
        classes=list(artifacts.spec.classes),
        frontend=artifacts.spec.frontend,
        training_dataset=_manifest_dataset(Path(artifacts.directory)),
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


def score_keras(keras_path: Path, features: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Float scores (n, n_classes) of a Keras model on int8 features fed as float32."""
    import keras

    try:
        model = keras.saving.load_model(keras_path, compile=False)
    except (OSError, ValueError) as error:
        raise EvaluationError(f"{keras_path}: cannot load the Keras model ({error})") from error
    inputs = features.astype(np.float32).reshape((features.shape[0], *model.input_shape[1:]))
    # predict() handles the last partial batch without padding: each clip scored once.
    return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), dtype=np.float64)


def score_tflite(
    tflite_path: Path,
    features: np.ndarray,
    *,
    backend: str = "litert",
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Scores in [0, 1] (n, n_classes) of a .tflite on LiteRT or TFLM, outputs dequantized."""
    from microspeech.tflite.runtime import TfliteRunner

    runner = TfliteRunner(tflite_path, backend=backend)
    # Our features are int8 values; with the usual input scale 1 / zero point 0 this is the identity.
    batch = runner.input_details.quantize(features.astype(np.float32))
    chunks = []
    for start in range(0, batch.shape[0], _CHUNK):
        chunks.append(runner.predict(batch[start : start + _CHUNK]))
        if on_progress:
            on_progress(chunks[-1].shape[0])
    raw = np.concatenate(chunks).reshape(batch.shape[0], -1)
    return runner.output_details.dequantize(raw).astype(np.float64)


def _check_each_clip_once(clips: list[Any], n_scores: int, n_labels: int) -> None:
    if n_scores != n_labels:
        raise EvaluationError(
            f"{n_scores} scores for {n_labels} clips: each clip must be scored exactly once"
        )
    paths = [str(clip.path) for clip in clips if clip is not None]
    if len(set(paths)) != len(paths):
        raise EvaluationError("the test set lists some clips twice; each clip must be scored exactly once")


def evaluate_model(
    model: str | Path,
    *,
    tflite: bool = False,
    tflm: bool = False,
    runtime: str | None = None,
    dataset: str | None = None,
    output_dir: str | Path | None = None,
    split: str = "test",
    seed: int = 0,
    plots: bool = True,
    show_progress: bool = True,
    word_offset: float = 0.0,
) -> EvaluationReport:
    """Score every clip of the test split once and write eval-results.json, summary.txt and plots.

    MODEL: a registered name, a model directory, a `.keras` file or a bare `.tflite`.
    By default the float (Keras) and int8 (.tflite on LiteRT) models are both evaluated
    when both exist; `tflite=True` keeps only the int8 one. `runtime` picks the interpreter of
    the int8 model: litert (default), tflm (the `tflite-micro` package; `tflm=True` is short
    for it) or silabs-tflm (Silicon Labs' TFLM build from the MLTK wheel, the kernels of the part).
    `dataset`: a dataset name or path; by default the one recorded in the model's
    manifest.json, else the official Speech Commands test set.
    Results go to `output_dir`, by default `<model dir>/eval/` (for a bare .tflite,
    `eval/` next to it). Plots of a variant not evaluated this time are removed there.
    `word_offset`: where each trimmed word sits in the one-second window, as a fraction of the
    room left (0, the default, left-aligns as training's validation does; 0.5 centres).
    """
    from microspeech.data import load_dataset
    from microspeech.data.pipeline import make_eval_set

    if not 0.0 <= word_offset <= 1.0:
        raise EvaluationError(
            f"--word-offset {word_offset}: must be within [0, 1] (0 left-aligns, 1 right-aligns)"
        )
    from microspeech.tflite.runtime import BACKENDS, available_backends

    backend = runtime or ("tflm" if tflm else "litert")
    if backend not in BACKENDS:
        raise EvaluationError(f"--runtime {backend}: expected one of {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise EvaluationError(
            f"--runtime {backend}: Silicon Labs' TFLM is not installed "
            "(pip install --no-deps silabs-mltk==0.20.0)"
        )
    target = resolve_model_under_test(model)
    if target.tflite_path is None and (tflite or runtime or tflm or target.keras_path is None):
        where = target.model_dir or model
        raise EvaluationError(f"{where}: no .tflite model to evaluate (train it, or drop --tflite/--tflm)")
    available = {"float": target.keras_path is not None, "int8": target.tflite_path is not None}
    wanted = ["int8"] if tflite else [variant for variant in VARIANTS if available[variant]]

    dataset_name = dataset or target.training_dataset or DEFAULT_TEST_DATASET
    try:
        audio_dataset = load_dataset(dataset_name)
    except (FileNotFoundError, ValueError) as error:
        raise EvaluationError(f"--dataset {dataset_name}: {error}") from error
    if not audio_dataset.split(split):
        raise EvaluationError(
            f"--dataset {dataset_name} ({audio_dataset.root}) has no '{split}' clips; pass a test set, "
            f"e.g. --dataset {DEFAULT_TEST_DATASET} or the folder of the official test-set archive"
        )
    eval_set = make_eval_set(
        audio_dataset, split, target.classes, target.frontend, seed=seed, word_offset=word_offset
    )
    features = np.asarray(eval_set.features)
    labels = np.asarray(eval_set.labels, dtype=np.int64)

    results: list[VariantResult] = []
    with _progress() as progress:
        for variant in wanted:
            started = time.perf_counter()
            if variant == "float":
                assert target.keras_path is not None
                task = progress.add_task(
                    f"Scoring {target.keras_path.name} (Keras)", total=None, visible=show_progress
                )
                scores = score_keras(target.keras_path, features)
                path, runtime = target.keras_path, "keras"
            else:
                assert target.tflite_path is not None
                task = progress.add_task(
                    f"Scoring {target.tflite_path.name} ({backend})",
                    total=len(labels),
                    visible=show_progress,
                )
                scores = score_tflite(
                    target.tflite_path,
                    features,
                    backend=backend,
                    on_progress=lambda n, task=task: progress.advance(task, n),
                )
                path, runtime = target.tflite_path, backend
            progress.remove_task(task)
            if scores.shape[1] != len(target.classes):
                raise EvaluationError(
                    f"{path}: {scores.shape[1]} outputs for {len(target.classes)} classes {target.classes}"
                )
            _check_each_clip_once(eval_set.clips, scores.shape[0], labels.size)
            metrics = compute_metrics(scores, labels, target.classes)
            results.append(
                VariantResult(variant, runtime, path, metrics, scores, time.perf_counter() - started)
            )

    report = EvaluationReport(
        name=target.name,
        model_dir=target.model_dir,
        dataset=dataset_name,
        dataset_root=Path(audio_dataset.root),
        split=split,
        word_offset=word_offset,
        classes=target.classes,
        labels=labels,
        clip_paths=[str(clip.path) if clip is not None else None for clip in eval_set.clips],
        results=results,
    )
    if output_dir is None:
        base = target.model_dir or (target.tflite_path.parent if target.tflite_path else Path.cwd())
        output_dir = base / "eval"
    report.output_dir = Path(output_dir)
    report.files = write_results(report, report.output_dir)
    if plots:
        for result in results:
            title = f"{report.name} {result.variant} ({result.runtime})"
            report.files += write_plots(result.metrics, report.output_dir, result.variant, title)
    _remove_stale_plots(report.output_dir, keep=set(report.files))
    return report


def _remove_stale_plots(output_dir: Path, keep: set[Path]) -> None:
    """Plots of a variant not evaluated this time would contradict the new eval-results.json."""
    for variant in VARIANTS:
        for plot in PLOTS:
            path = output_dir / f"{variant}-{plot}.png"
            if path not in keep:
                path.unlink(missing_ok=True)
