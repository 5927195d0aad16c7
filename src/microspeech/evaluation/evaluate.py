"""Clip evaluation of a trained model: score every test clip once, compute MLTK's metrics, write a report.

`evaluate_model` takes a model name, a model directory, a `.keras` file or a bare `.tflite`
file. The float model runs in Keras (its input is the int8 features as float32, as in
training); the int8 model runs in LiteRT or TFLM through `TfliteRunner`, its int8 scores
dequantized with the output scale and zero point. Both are scored on the same feature
array, built once, so float and int8 see identical inputs.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.evaluation.metrics import compute_metrics
from microspeech.evaluation.plots import PLOTS, render_plots
from microspeech.evaluation.report import (
    EvaluationReport,
    VariantResult,
    checked_results_dir,
    manifest_dataset,
    manifest_label,
    results_files,
)
from microspeech.files import write_files_atomic
from microspeech.progress import progress_bar

# Without a recorded training dataset, score on the official Speech Commands test set.
DEFAULT_TEST_DATASET = "speech_commands_test_set_v0.02"
VARIANTS = ("float", "int8")
# Samples per call into an interpreter between progress-bar updates.
_CHUNK = 64


class EvaluationError(ValueError):
    """A model or dataset that cannot be evaluated; the message names the file or option."""


def _progress() -> Any:

    return progress_bar(kind="count")


def score_keras(keras_path: Path, features: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Float scores (n, n_classes) of a Keras model on int8 features fed as float32."""
    from microspeech.tflite.summary import load_keras_file

    try:
        model = load_keras_file(keras_path)
    except (OSError, ValueError) as error:
        raise EvaluationError(str(error)) from error
    inputs = features.astype(np.float32).reshape((features.shape[0], *model.input_shape[1:]))
    # Called batch by batch rather than through predict(): no tf.data pipeline, whose graph makes
    # TensorFlow's C++ log an E0000 "NodeDef mentions attribute use_unbounded_threadpool" line
    # in the middle of the results; each clip is scored once either way.
    chunks = [
        np.asarray(model(inputs[start : start + batch_size], training=False))
        for start in range(0, len(inputs), batch_size)
    ]
    n_outputs = int(model.output_shape[-1])
    return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, n_outputs))


def score_tflite(
    tflite: Path | bytes,
    features: np.ndarray,
    *,
    backend: str = "litert",
    on_progress: Callable[[int], None] | None = None,
    source: str | None = None,
) -> np.ndarray:
    """Scores in [0, 1] (n, n_classes) of a .tflite on LiteRT or TFLM, outputs dequantized;
    `source` names the file in errors when `tflite` is its bytes."""
    from microspeech.tflite.runtime import TfliteRunner

    runner = TfliteRunner(tflite, backend=backend, source=source)
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


def choose_backend(tflm: bool, runtime: str | None) -> str:
    """The interpreter `--tflm` / `--runtime` ask for (litert by default), one this machine runs;
    EvaluationError naming the option otherwise. Clip and stream evaluation both take it from here."""
    from microspeech.tflite.runtime import check_backend

    if tflm and runtime not in (None, "tflm"):  # one of them would be ignored
        raise EvaluationError(f"--tflm and --runtime {runtime} disagree; give one")
    try:
        return check_backend(runtime or ("tflm" if tflm else "litert"), "--runtime")
    except ValueError as error:
        raise EvaluationError(str(error)) from None


def evaluate_model(
    model: str | Path,
    *,
    tflite: bool = False,
    tflm: bool = False,
    runtime: str | None = None,
    dataset: str | Path | None = None,
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
    Results go to `output_dir`, by default `eval/` beside the model (an .mltk.zip's go to
    `./NAME-eval`: `report.default_results_dir`). Plots of a variant not evaluated this time
    are removed there.
    `word_offset`: where each trimmed word sits in the one-second window, as a fraction of the
    room left (0, the default, left-aligns as training's validation does; 0.5 centres).
    """
    from microspeech.checks import OptionError, check_named, check_number, check_output_outside, check_seed
    from microspeech.data import load_dataset
    from microspeech.data.folder import spoken_word
    from microspeech.data.pipeline import make_eval_set

    try:  # numpy's "expected non-negative integer" named no option
        seed = check_seed(seed)
    except OptionError as error:
        raise EvaluationError(str(error)) from None
    try:  # "0.5" or None failed inside the comparison
        word_offset = check_number(word_offset, "--word-offset", low=0.0, high=1.0)
    except OptionError as error:
        raise EvaluationError(f"{error} (0 left-aligns, 1 right-aligns)") from None
    if output_dir is not None and not str(output_dir).strip():
        # Path("") is the current folder: results would land there unasked.
        raise EvaluationError("--output '': an empty folder name; name a folder (or leave it out)")
    try:  # "" fell back to the manifest's dataset (the stream, to the official test set)
        check_named(dataset, "--dataset")
    except OptionError as error:
        raise EvaluationError(str(error)) from None
    if isinstance(dataset, Path):  # recorded in the results JSON as the user gave it
        dataset = str(dataset)
    backend = choose_backend(tflm, runtime)
    from microspeech.models import ModelResolutionError, resolve_model
    from microspeech.models.artifacts import KERAS_SUFFIXES

    if str(model).endswith(".keras") and Path(model).is_file() and not zipfile.is_zipfile(model):
        # Said before the classes: a cut .keras names neither, and its damage is the news.
        raise EvaluationError(
            f"not a readable Keras model: {model} (not a zip archive: truncated or other format)"
        )
    try:
        target = resolve_model(model)
        target.require_classes()
        target.require_raw_features()
        frontend = target.frontend  # unusable fe.* parameters: said before the dataset is indexed
    except ModelResolutionError as error:
        message = str(error)
        raise EvaluationError(message if str(model) in message else f"MODEL {model}: {message}") from error
    # A file argument names one variant: a .keras the float model, a .tflite or archive the int8 one.
    suffix = Path(str(model)).suffix
    keras_path = target.keras_path if suffix not in (".tflite", ".zip") else None
    tflite_file = target.tflite if suffix not in KERAS_SUFFIXES else None
    if suffix in KERAS_SUFFIXES and (tflite or runtime or tflm):
        # "no .tflite model" misled when one lay beside the .keras.
        raise EvaluationError(
            f"{model}: a {suffix} file is the float model; --tflite/--tflm/--runtime evaluate the int8 "
            "one: give its .tflite or the model's folder"
        )
    if suffix not in KERAS_SUFFIXES and target.tflite_problem is not None:
        # The float model alone was evaluated without a word of the int8 one (--tflite: "no .tflite").
        keras = f"; the float model alone: give {target.keras_path}" if target.keras_path else ""
        raise EvaluationError(f"{target.tflite_problem}{keras}")
    if tflite_file is None and (tflite or runtime or tflm or keras_path is None):
        where = target.directory or model
        raise EvaluationError(f"{where}: no .tflite model to evaluate (train it, or drop --tflite/--tflm)")
    output_given = output_dir is not None
    try:
        model_file = target.tflite_path or target.keras_path or Path.cwd() / "model"
        output_dir = checked_results_dir(model_file, output_dir)
    except OptionError as error:
        raise EvaluationError(str(error)) from None
    available = {"float": keras_path is not None, "int8": tflite_file is not None}
    wanted = ["int8"] if tflite else [variant for variant in VARIANTS if available[variant]]

    try:
        recorded = None if dataset else manifest_dataset(target)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    dataset_name = dataset or recorded or DEFAULT_TEST_DATASET
    # Named as the user gave it: --dataset, or the training dataset the manifest records.
    source = f"--dataset {dataset_name}"
    if recorded:
        source = manifest_label(recorded, target.argument)
    elif not dataset:  # no --dataset given and no manifest: the default, not an option's value
        source = f"the default test set {dataset_name} (no --dataset given)"
    try:
        audio_dataset = load_dataset(dataset_name)
    except (FileNotFoundError, ValueError) as error:
        raise EvaluationError(f"{source}: {error}") from error
    try:  # each part's own root: a combined dataset's common root may be a far larger folder
        roots = [part.root for part in audio_dataset.parts] or [audio_dataset.root]
        given = "--output" if output_given else "the results folder (the default beside the model)"
        check_output_outside(output_dir, roots, "its results and plots", given)
    except OptionError as error:
        raise EvaluationError(str(error)) from None
    if not audio_dataset.split(split):
        note = audio_dataset.split_notes.get(split)
        shown_root = "" if str(audio_dataset.root) in source else f" ({audio_dataset.root})"
        raise EvaluationError(
            f"{source}{shown_root} has no '{split}' clips"
            + (f" ({note})" if note else "")
            + f"; pass a test set, e.g. --dataset {DEFAULT_TEST_DATASET} or the folder of the official "
            "test-set archive"
        )
    eval_set = make_eval_set(
        audio_dataset,
        split,
        target.classes,
        frontend,
        seed=seed,
        word_offset=word_offset,
        trim_threshold_db=target.trim_threshold_db,
    )
    features = np.asarray(eval_set.features)
    labels = np.asarray(eval_set.labels, dtype=np.int64)
    if len(labels) == 0:  # e.g. a gesture model's classes against speech clips
        words = ", ".join(audio_dataset.words[:12]) + (" ..." if len(audio_dataset.words) > 12 else "")
        raise EvaluationError(
            f"{source}: no '{split}' clip of any class of {target.tflite_path or model} "
            f"({', '.join(target.classes)}); the dataset's words: {words}"
        )

    results: list[VariantResult] = []
    with _progress() as progress:
        for variant in wanted:
            started = time.perf_counter()
            if variant == "float":
                assert keras_path is not None
                task = progress.add_task(
                    f"Scoring {keras_path.name} (Keras)", total=None, visible=show_progress
                )
                scores = score_keras(keras_path, features)
                path, runtime = keras_path, "keras"
            else:
                assert tflite_file is not None
                task = progress.add_task(
                    f"Scoring {tflite_file.path.name} ({backend})",
                    total=len(labels),
                    visible=show_progress,
                )
                scores = score_tflite(
                    tflite_file.tflite_bytes,
                    features,
                    backend=backend,
                    on_progress=lambda n, task=task: progress.advance(task, n),
                    source=str(tflite_file.path),
                )
                path, runtime = tflite_file.path, backend
                variant = _tflite_variant(tflite_file.tflite_bytes)
            progress.remove_task(task)
            if scores.shape[1] != len(target.classes):
                raise EvaluationError(
                    f"{path}: {scores.shape[1]} outputs for {len(target.classes)} classes {target.classes}"
                )
            _check_each_clip_once(eval_set.clips, scores.shape[0], labels.size)
            low, high = float(scores.min()), float(scores.max())
            if low < 0.0 or high > 1.0:  # the metrics' own check names no file, and speaks of dequantizing
                raise EvaluationError(
                    f"{path}: its outputs ({low:.3g} to {high:.3g}) are not probabilities: the model must "
                    "end in a softmax (logits have no 0-1 scale for the thresholds and curves)"
                )
            metrics = compute_metrics(scores, labels, target.classes)
            results.append(
                VariantResult(variant, runtime, path, metrics, scores, time.perf_counter() - started)
            )

    report = EvaluationReport(
        name=target.name,
        model_dir=target.directory,
        dataset=dataset_name,
        dataset_root=Path(audio_dataset.root),
        split=split,
        word_offset=word_offset,
        classes=target.classes,
        labels=labels,
        clip_paths=[str(clip.path) if clip is not None else None for clip in eval_set.clips],
        words=[spoken_word(clip) for clip in eval_set.clips],
        results=results,
        seed=seed,
    )
    report.output_dir = output_dir
    # Everything rendered first, then written as one set: stopped halfway, the folder held this
    # model's results beside the previous model's plots.
    contents = results_files(report, report.output_dir)
    if plots:
        for result in results:
            title = f"{report.name} {result.variant} ({result.runtime})"
            contents |= render_plots(result.metrics, report.output_dir, result.variant, title)
    report.files = write_files_atomic(contents)
    _remove_stale_plots(report.output_dir, keep=set(report.files))
    return report


def _tflite_variant(tflite_bytes: bytes) -> str:
    """"int8" for an integer model (what `train` writes, or one a converter left a float input
    on); otherwise named by its arithmetic ("tflite-float32", "tflite-hybrid"), so a float
    .tflite is never reported as the int8 model."""
    from microspeech.tflite.flatbuffer import quantization_kind

    kind = quantization_kind(tflite_bytes)
    return "int8" if kind == "int8" else f"tflite-{kind}"


def _remove_stale_plots(output_dir: Path, keep: set[Path]) -> None:
    """Plots of a variant not evaluated this time would contradict the new eval-results.json."""
    for plot in PLOTS:
        # Every variant's: float, int8 and a float or hybrid .tflite's (tflite-float32-...).
        named = [output_dir / f"{variant}-{plot}.png" for variant in VARIANTS]
        for path in [*named, *output_dir.glob(f"tflite-*-{plot}.png")]:
            if path not in keep:
                path.unlink(missing_ok=True)
