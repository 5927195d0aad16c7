"""`train_model`: dataset -> balanced augmented epochs -> fast training -> best weights -> int8 .tflite.

Every epoch: render the epoch's augmented features (deterministic from seed and epoch),
train on them with the fast loop, evaluate on the un-augmented validation split, apply
ReduceLROnPlateau and EarlyStopping, append history, write a checkpoint. At the end the
best epoch's weights are restored, saved as .keras and quantized to the .tflite.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import shlex
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from microspeech import stopping as stop_requests  # "stopping" below is the EarlyStopping
from microspeech.checks import check_int, check_output_folder, check_output_outside, check_seed
from microspeech.files import atomic_output, write_bytes_atomic, write_text_atomic
from microspeech.labels import UNKNOWN
from microspeech.models import ModelArtifacts, ModelSpec, resolve_model_spec
from microspeech.paths import cache_dir, datasets_dir
from microspeech.progress import progress_bar

if TYPE_CHECKING:
    from microspeech.data import AudioDataset
from microspeech.training.artifacts import (
    ResumeError,
    load_checkpoint,
    model_directory,
    output_lock,
    package_versions,
    save_checkpoint,
)
from microspeech.training.callbacks import (
    EarlyStopping,
    ReduceLROnPlateau,
    balanced_class_weights,
    cosine_learning_rate,
    scale_class_weights,
)

logger = logging.getLogger("microspeech.training")
logger.propagate = False  # epoch lines go to train.log; the console shows progress bars
# models.artifacts.HISTORY_START is how the file begins: keep the first three in their order.
HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "val_balanced_accuracy",
    "learning_rate",
    "samples_per_second",
    "seconds",
)
# With a validation stream (TrainSettings.stream_validation_minutes): the stream score (mean
# share of keywords found within 1-8x the false-accept budget), the checkpoint score (the stream
# score plus validation accuracy), and keywords found at the best threshold within the budget,
# its false accepts per hour and the threshold.
STREAM_HISTORY_COLUMNS = (
    "val_stream_score",
    "val_stream_plus_accuracy",
    "val_stream_hit_rate",
    "val_stream_fa_per_hour",
    "val_stream_threshold",
)


def configure_determinism(seed: int) -> None:
    """Same seed, same result: Python/numpy/TF seeds and deterministic TF ops, and Keras' name
    counters reset, so a second training in one process names its layers (and the .tflite's
    tensors) as the first did, not conv2d_1."""
    import keras
    import tensorflow as tf

    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels (microspeech asks for them at import; a user
    who set TF_ENABLE_ONEDNN_OPTS=0, or imported TensorFlow first, may have them off)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def configure_threads() -> None:
    """One intra-op thread for TensorFlow: this model's ops are too small to split (it is ~30%
    faster alone), and the other core stays free for rendering the next epoch's features.
    Only possible before TensorFlow runs its first op; later calls keep what is set."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(2)
    except RuntimeError:
        pass


def _written_by_evaluate(folder: Path) -> bool:
    """A folder of only what `evaluate` writes (results, summary, plots): a user's own files in an
    eval/ of theirs are never removed."""
    from microspeech.evaluation.report import RESULTS_FILE, SUMMARY_FILE
    from microspeech.evaluation.streaming import STREAM_JSON

    if not folder.is_dir():
        return False
    names = (RESULTS_FILE, SUMMARY_FILE, STREAM_JSON)
    return all(
        entry.is_file() and (entry.name in names or entry.suffix == ".png") for entry in folder.iterdir()
    )


def _check_earlier_run_is_ours(artifacts: ModelArtifacts) -> None:
    """Refuse an output folder whose train.log, history.csv, manifest.json, checkpoint/ or
    logs/train/ a microspeech run did not write: a fresh run replaces those, and they were a
    user's own files."""
    foreign = []
    if artifacts.train_log_path.exists() and not artifacts.log_written_by_training:  # a folder is none
        foreign.append(artifacts.train_log_path.name)
    if artifacts.history_path.exists() and not artifacts.history_written_by_training:
        foreign.append(artifacts.history_path.name)
    if artifacts.manifest_path.exists() and not artifacts.manifest_written_by_training:
        foreign.append(artifacts.manifest_path.name)
    for folder, ours in (
        (artifacts.checkpoint_dir, lambda name: name in ("state.json", "arrays.npz")),
        (artifacts.logs_dir / "train", lambda name: name.startswith("events.out.tfevents.")),
    ):
        if folder.exists():
            entries = [entry.name for entry in folder.iterdir()] if folder.is_dir() else [""]
            if not all(ours(name) for name in entries):
                foreign.append(str(folder.relative_to(artifacts.directory)) + "/")
    if foreign:
        raise ValueError(
            f"--output {artifacts.directory}: holds {', '.join(foreign)}, which no microspeech run "
            "wrote; a fresh run would replace them: give another folder"
        )


class CalibrationError(RuntimeError):
    """The calibration's runtime refused the trained model: its .keras and .tflite are written,
    uncalibrated, and the manifest is not."""


def _progress(console: Console, enabled: bool) -> Any:

    # The epoch lines stay on screen (not transient), as Keras' do.
    return progress_bar(enabled, kind="stats", console=console, transient=False, only_on_terminal=False)


def _scalar_summary(tag: str, value: float) -> None:
    """A TensorBoard scalar without the tensorboard package (tf.summary.scalar needs it)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata)


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    streamed = bool(rows) and STREAM_HISTORY_COLUMNS[0] in rows[0]
    columns = HISTORY_COLUMNS + (STREAM_HISTORY_COLUMNS if streamed else ())
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _attach_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    # surrogateescape: a dataset folder whose name is not UTF-8 is logged as its bytes (it was a
    # "--- Logging error ---" traceback and a lost line).
    handler = logging.FileHandler(path, mode="a", encoding="utf-8", errors="surrogateescape")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def dataset_entry(data: AudioDataset, fingerprint: str) -> dict:
    """The manifest's "dataset": name, root, fingerprint, clips; a combined dataset adds "parts",
    each dataset's own name, root, fingerprint and the clips it contributes per split."""
    from microspeech.data import SPLITS
    from microspeech.data.pipeline import dataset_fingerprint

    # Absolute: `evaluate MODEL` finds the dataset again from any folder, never another one of the same name.
    entry = {
        "name": data.name,
        "root": str(Path(data.root).resolve()),
        "fingerprint": fingerprint,
        "clips": len(data.clips),
    }
    if data.parts:
        entry["parts"] = [
            {
                "name": part.name,
                "root": str(Path(part.root).resolve()),
                "fingerprint": dataset_fingerprint(part),
                "clips": len(part.clips),
                "clips_per_split": {split: len(part.split(split)) for split in SPLITS},
                "noise_files": len(part.noise_paths),
            }
            for part in data.parts
        ]
    return entry


def train_model(
    model: str | ModelSpec,
    *,
    dataset: str | Sequence[str] | None = None,
    seed: int = 0,
    output: str | Path | None = None,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
    console: Console | None = None,
    command_line: list[str] | None = None,
    calibration_runtime: str = "litert",
) -> ModelArtifacts:
    """Train a registered model (NAME or NAME-test), a spec file (.py) or a spec on a dataset name
    or folder (default: synthetic; synthetic-tiny for a dry run); returns its artifacts.

    `calibration_runtime`: the interpreter whose scores choose the detection parameters at the
    end (litert; tflm; silabs-tflm: Silicon Labs' kernels, so that the calibrated operating point
    holds on the part to the rounding, at several times the calibration's time).

    Errors in the seed, the model name, the runtime or the dataset (missing/empty class, too
    small for the split) are raised before any training starts; so is
    `microspeech.files.LockedError` when another training holds the output folder.
    """
    from microspeech.tflite.runtime import check_backend

    check_backend(calibration_runtime, "--calibration-runtime")
    seed = check_seed(seed)
    if output is not None and not str(output).strip():  # Path("") is the current folder
        raise ValueError(
            "--output '': an empty folder name (it would train into the current folder); name a folder"
        )
    if epochs is not None:  # 1.5 failed deep in the epoch loop, after the output folder was made
        epochs = check_int(epochs, "epochs", low=1)
    if dataset is not None and not isinstance(dataset, str | Path) and not (
        isinstance(dataset, Sequence) and dataset and all(isinstance(d, str | Path) for d in dataset)
    ):
        raise ValueError(f"dataset={dataset!r}: expected a dataset name or folder, or a list of them")
    spec = resolve_model_spec(model) if isinstance(model, str | Path) else model
    if dataset is None:  # as train without --dataset: a dry run needs no 4,680-clip set
        dataset = "synthetic-tiny" if spec.name.endswith("-test") else "synthetic"
    if epochs is not None:
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, epochs=epochs))
    # The spec's build() (a user's code) and its layers, checked before any clip is read: on the
    # full dataset the reading takes a minute or more. configure_determinism resets the names.
    # TensorFlow's threads first: they can be set only before its first op, which building runs
    # (two intra-op threads changed the sums' order, and every model's digits).
    from microspeech.tflite.convert import check_convertible_layers

    spec.check_trainable()
    configure_threads()
    check_convertible_layers(spec.build_model())
    if command_line is None:  # sys.argv would be the host's (a notebook's kernel, pytest)
        command_line = _api_call(model, spec, dataset, seed, output, resume, epochs, calibration_runtime)
    artifacts = ModelArtifacts(model_directory(spec.name, output), spec.name)
    # Outside the dataset first: the writability check makes a probe file where the folder would go.
    check_output_outside(artifacts.directory, _dataset_folders(dataset))
    check_output_folder(artifacts.directory, "--output")
    if not resume:  # before the lock file is made there, and before the data is read
        _check_earlier_run_is_ours(artifacts)
    with output_lock(artifacts.directory):
        return _train_locked(
            spec,
            artifacts,
            dataset,
            seed,
            resume,
            progress,
            console or Console(stderr=True),
            command_line,
            calibration_runtime,
        )


def _dataset_folders(dataset: str | Path | Sequence[str | Path]) -> list[str | Path | tuple[str, Path]]:
    """The folders an output must stay out of: a folder as given; a registered name, the folder
    every registered dataset is downloaded or generated into (not read yet: loading takes time)."""
    from microspeech.data.registry import list_datasets

    names = [dataset] if isinstance(dataset, str | Path) else list(dataset)
    registered = set(list_datasets())
    return [
        (item, datasets_dir()) if isinstance(item, str) and item in registered else item for item in names
    ]


def _api_call(
    model: str | Path | ModelSpec,
    spec: ModelSpec,
    dataset: str | Path | Sequence[str | Path],
    seed: int,
    output: str | Path | None,
    resume: bool,
    epochs: int | None,
    calibration_runtime: str,
) -> list[str]:
    """What a manifest records for a train_model() call: the `microspeech train` command that
    reruns it when MODEL is a name or spec file, else the call itself (a ModelSpec object has no
    command line)."""
    datasets = [dataset] if isinstance(dataset, str | Path) else list(dataset)
    if not isinstance(model, str | Path):
        arguments = [f"<ModelSpec {spec.name!r}>", f"dataset={[str(d) for d in datasets]!r}", f"seed={seed}"]
        arguments += [f"output={str(output)!r}"] if output is not None else []
        arguments += ["resume=True"] if resume else []
        arguments += [f"epochs={epochs}"] if epochs is not None else []
        if calibration_runtime != "litert":
            arguments += [f"calibration_runtime={calibration_runtime!r}"]
        return ["python", "-c", f"microspeech.training.train_model({', '.join(arguments)})"]
    command = ["microspeech", "train", str(model)]
    for item in datasets:
        command += ["--dataset", str(item)]
    command += ["--seed", str(seed)]
    command += ["--output", str(output)] if output is not None else []
    command += ["--resume"] if resume else []
    command += ["--epochs", str(epochs)] if epochs is not None else []
    command += ["--calibration-runtime", calibration_runtime] if calibration_runtime != "litert" else []
    return command


def _train_locked(
    spec: ModelSpec,
    artifacts: ModelArtifacts,
    dataset: str | Sequence[str],
    seed: int,
    resume: bool,
    progress: bool,
    console: Console,
    command_line: list[str],
    calibration_runtime: str,
) -> ModelArtifacts:
    from microspeech.data import load_datasets
    from microspeech.data.pipeline import TrainingPipeline, dataset_fingerprint

    started = time.perf_counter()
    data = load_datasets([dataset] if isinstance(dataset, str | Path) else list(dataset))
    fingerprint = dataset_fingerprint(data)
    checkpoint = load_checkpoint(artifacts.checkpoint_dir) if resume else None
    if checkpoint is not None:
        _check_resumable(checkpoint[1], spec, seed, fingerprint, _dataset_roots(data), artifacts)
    elif resume:
        console.print(f"no checkpoint in {artifacts.checkpoint_dir}: starting from the first epoch")
    if checkpoint is not None and checkpoint[1]["stopped"]:
        # Early stopping ended it: a larger --epochs adds none (it would stop again at once).
        monitor = checkpoint[1]["early_stopping"].get("monitor", "its monitor")
        console.print(
            f"{artifacts.checkpoint_dir}: the run stopped early after epoch {checkpoint[1]['epoch'] + 1} "
            f"({monitor} no longer improving); no epoch to add, the model is written from its kept epoch",
            markup=False,
        )

    with _progress(console, progress) as bars:
        task = bars.add_task("decoding clips", total=None, stats="")
        pipeline = TrainingPipeline(
            data,
            spec.training_target(),
            seed=seed,
            progress=lambda done, total: bars.update(task, completed=done, total=total),
            bank_cache=cache_dir() / "clip_banks",
        )
        bars.update(task, description="validation features")
        validation = pipeline.validation()
        stream = None
        if spec.train.stream_validation_minutes > 0:
            from microspeech.training.stream_selection import ValidationStream, check_stream_data, count_words

            check_stream_data(data, spec)
            bars.update(task, description="validation stream")
            stream = ValidationStream.build(data, spec, seed=seed)
        bars.remove_task(task)

    artifacts.directory.mkdir(parents=True, exist_ok=True)
    earlier = (
        artifacts.train_log_path,
        artifacts.history_path,
        artifacts.logs_dir / "train",
        artifacts.manifest_path,
    )
    if checkpoint is None:
        _check_earlier_run_is_ours(artifacts)
    if checkpoint is None and any(path.exists() for path in (*earlier, artifacts.checkpoint_dir)):
        # A fresh run where an earlier one trained: its log and TensorBoard curves would run on
        # into this one's (its history.csv would stand beside them until the first epoch); its
        # manifest would vouch for this run's model files should it stop before its own (they are
        # replaced at the end, as any fresh run does); its checkpoint would be the one an
        # interrupted run's --resume advice named.
        # Its evaluation results (eval/, when evaluate wrote all of it) described the earlier
        # model beside this run's.
        evaluation = _written_by_evaluate(artifacts.eval_dir)
        console.print(
            f"{artifacts.directory} holds an earlier run: this one replaces it (its train.log, "
            f"history.csv, manifest, checkpoint, {'evaluation results ' if evaluation else ''}and "
            "TensorBoard logs go now; --resume continues a run instead)",
            markup=False,
        )
        artifacts.train_log_path.unlink(missing_ok=True)
        artifacts.history_path.unlink(missing_ok=True)
        artifacts.manifest_path.unlink(missing_ok=True)
        shutil.rmtree(artifacts.logs_dir / "train", ignore_errors=True)
        shutil.rmtree(artifacts.checkpoint_dir, ignore_errors=True)
        if evaluation:
            shutil.rmtree(artifacts.eval_dir, ignore_errors=True)
    handler = _attach_log(artifacts.train_log_path)
    try:
        logger.info(
            "train %s on %s (%s), seed %d, %s",
            spec.name,
            data.name,
            data.root,
            seed,
            "resuming" if checkpoint else "from scratch",
        )
        logger.info("validation: %s", validation.counts())
        if stream is not None:
            logger.info(
                "validation stream: %.1f min, %d keywords, %s, %d inferences",
                stream.stream.seconds / 60,
                stream.keywords,
                count_words(stream.other_words),
                len(stream.inputs.times_ms),
            )
        keras_model, history, best_epoch, mining_rounds = _fit(
            spec, pipeline, validation, stream, seed, fingerprint, checkpoint, artifacts, console, progress
        )
        _finish(
            spec,
            artifacts,
            keras_model,
            validation.features,
            {
                "name": spec.name,
                "seed": seed,
                "dataset": dataset_entry(data, fingerprint),
                "epochs_run": len(history),
                "hard_negative_mining": mining_rounds,
                "best_epoch": best_epoch,
                # The kept epoch's: the highest of the run was another epoch's when the stream chose.
                "best_val_accuracy": next(
                    (r["val_accuracy"] for r in history if r["epoch"] == best_epoch), math.nan
                ),
                "command_line": command_line,
                "command": shlex.join(command_line),
                "wall_seconds": round(time.perf_counter() - started, 2),
            },
            console,
            data,
            stream,
            progress,
            calibration_runtime,
        )
    except BaseException as error:
        # The folder keeps its log (and any checkpoint to --resume from): the log says why it ends.
        # A stop signal counts even when TensorFlow turned its KeyboardInterrupt into its own error.
        signal_name = stop_requests.received()
        if isinstance(error, KeyboardInterrupt) or signal_name is not None:
            reason = f"interrupted ({signal_name})" if signal_name else "interrupted"
        else:
            reason = f"{type(error).__name__}: {error}"
        logger.error("training stopped: %s", reason)
        raise
    finally:
        logger.removeHandler(handler)
        handler.close()
    return artifacts


def _dataset_roots(data: Any) -> list[str]:
    """The absolute folders of a (combined) dataset, as a checkpoint records them."""
    return [str(Path(part.root).resolve()) for part in (data.parts or [data])]


def _check_resumable(
    state: dict[str, Any],
    spec: ModelSpec,
    seed: int,
    fingerprint: str,
    roots: list[str],
    artifacts: ModelArtifacts,
) -> None:
    start_over = "or train without --resume to start over"
    if state["model"] != spec.name:
        raise ResumeError(
            f"{artifacts.checkpoint_dir} belongs to model {state['model']!r}, not {spec.name!r}; "
            f"resume with that model {start_over}"
        )
    if state["seed"] != seed:
        raise ResumeError(
            f"{artifacts.checkpoint_dir} was written with --seed {state['seed']}, not --seed {seed}; "
            f"resume with --seed {state['seed']} {start_over}"
        )
    recorded = state.get("dataset_roots")  # checkpoints before stop 55 lack it
    if state["dataset_fingerprint"] != fingerprint and recorded and recorded != roots:
        raise ResumeError(
            f"{artifacts.checkpoint_dir} was written on the dataset {', '.join(recorded)}, not "
            f"{', '.join(roots)}; resume with --dataset {' --dataset '.join(recorded)} {start_over}"
        )
    if state["dataset_fingerprint"] != fingerprint:
        raise ResumeError(
            f"{artifacts.checkpoint_dir} was written on another version of the dataset (a file added, "
            f"removed, resized or moved to another word or split since); resume with the same --dataset "
            f"{start_over}"
        )
    saved = int(state["epoch"]) + 1  # the state counts epochs from 0
    if saved > spec.train.epochs:  # nothing would train, and the manifest would say `saved` epochs ran
        raise ResumeError(
            f"{artifacts.checkpoint_dir} has run {saved} epochs, more than the {spec.train.epochs} this "
            f"run allows; resume with --epochs {saved} or more {start_over}"
        )
    recorded_settings = state.get("settings")  # checkpoints before stop 58 lack it
    # One run with two recipes (e.g. its epochs scored for 2 and then for 10 FA/h, the best chosen
    # across both) is not a run of either. The epoch limit may change (--epochs extends a run), and
    # a setting one side lacks (added by a newer microspeech) is not compared.
    was, now = _flat(recorded_settings or {}), _flat(resume_settings(spec))
    changed = [
        f"{key} {was[key]!r} (now {now[key]!r})"
        for key in sorted(set(was) & set(now))
        if was[key] != now[key] and key not in RESUMABLE_CHANGES
    ]
    if changed:
        raise ResumeError(
            f"{artifacts.checkpoint_dir} was written with other settings of {spec.name}: "
            f"{'; '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}; resume with the same options "
            f"and spec (e.g. --max-fa-per-hour) {start_over}"
        )
    # The spec's settings leave out what build() makes: an edited layer dumped 127 lines of weight
    # values (a new shape) or was resumed into a run of two architectures (a new dropout rate).
    recorded_layers = state.get("layers")  # checkpoints before stop 60 lack it
    if recorded_layers is not None:
        # Both sides as layer_summary words them now (a checkpoint may keep inner names).
        was = [{**layer, "config": _without_names(layer.get("config", {}))} for layer in recorded_layers]
        difference = _layers_difference(was, layer_summary(spec.build_model()))
        if difference:
            raise ResumeError(
                f"{artifacts.checkpoint_dir} was written by other layers than {spec.name}'s build() makes "
                f"now ({difference}); resume with the layers it was written with {start_over}"
            )


def layer_summary(model: Any) -> list[dict[str, Any]]:
    """Per layer its class, its settings (but its name) and its weights' shapes, as JSON reads
    them back: what a checkpoint's weights belong to."""
    layers = []
    for layer in model.layers:
        # Names left out at every depth: a wrapper's or a nested block's inner layers carry Keras'
        # counters (dense_1 on a rebuild), which say nothing of the weights.
        config = _without_names(layer.get_config())
        layers.append(
            {
                "class": type(layer).__name__,
                "config": config,
                "shapes": [list(weight.shape) for weight in layer.weights],
            }
        )
    return json.loads(json.dumps(layers, sort_keys=True, default=str))


def _without_names(value: Any) -> Any:
    if isinstance(value, dict):
        if "DTypePolicy" in str(value.get("class_name", "")):  # its name is the dtype: kept
            return value
        return {key: _without_names(item) for key, item in value.items() if key != "name"}
    if isinstance(value, list | tuple):
        return [_without_names(item) for item in value]
    return value


def _layers_difference(was: list[dict[str, Any]], now: list[dict[str, Any]]) -> str:
    """The first difference between two `layer_summary`s, in words; "" when equal."""
    for index, (before, after) in enumerate(zip(was, now, strict=False), start=1):
        if before["class"] != after["class"]:
            return f"layer {index}: {before['class']}, now {after['class']}"
        keys = sorted(set(before["config"]) | set(after["config"]))
        changed = [
            f"{key} {before['config'].get(key)!r} -> {after['config'].get(key)!r}"
            for key in keys
            if before["config"].get(key) != after["config"].get(key)
        ]
        if before["shapes"] != after["shapes"]:
            changed.append(f"weight shapes {before['shapes']} -> {after['shapes']}")
        if changed:
            return f"layer {index}, {before['class']}: {'; '.join(changed)[:300]}"
    if len(was) != len(now):
        return f"{len(was)} layers, now {len(now)}"
    return ""


# Settings a resumed run may change: `train --epochs` extends (or shortens) a run.
RESUMABLE_CHANGES = frozenset({"train.epochs"})


def resume_settings(spec: ModelSpec) -> dict[str, Any]:
    """The recipe a checkpoint was written with, as JSON reads it back (tuples as lists)."""
    settings = {key: value for key, value in spec.to_dict().items() if key != "description"}
    return json.loads(json.dumps(settings, default=str))


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def loss_class_weights(spec: ModelSpec, labels: Any) -> list[float]:
    """The per-class loss weights: balanced (or all 1) times the spec's `class_weight_scale`."""
    n_classes = len(spec.classes)
    settings = spec.train
    weights = (
        balanced_class_weights(labels, n_classes) if settings.balanced_class_weights else [1.0] * n_classes
    )
    return scale_class_weights(weights, spec.classes, settings.class_weight_scale)


def _fit(
    spec: ModelSpec,
    pipeline: Any,
    validation: Any,
    stream: Any,
    seed: int,
    fingerprint: str,
    checkpoint: Any,
    artifacts: ModelArtifacts,
    console: Console,
    progress: bool,
) -> tuple[Any, list[dict[str, Any]], int, list[dict[str, Any]]]:
    """The epoch loop; returns the model with the best epoch's weights, the history, the best epoch."""
    import tensorflow as tf

    from microspeech.tflite.convert import check_convertible_layers
    from microspeech.training.loop import FastTrainer

    configure_threads()
    configure_determinism(seed)
    logger.info("TensorFlow oneDNN kernels: %s", "on" if onednn_enabled() else "off")
    settings = spec.train
    _, first_labels = pipeline.epoch_sources(0)
    weights = loss_class_weights(spec, first_labels)
    model = spec.build_model()
    check_convertible_layers(model)  # before the epochs: the conversion at the end would fail
    layers = layer_summary(model)
    trainer = FastTrainer(
        model,
        settings.learning_rate,
        weights,
        label_smoothing=settings.label_smoothing,
        focal_gamma=settings.focal_gamma,
        weight_averaging=settings.weight_averaging,
        time_smoothing=settings.time_smoothing,
        # One finer label more than the pipeline's: the mined windows.
        word_classes=len(pipeline.word_classes) + 1 if settings.word_head else 0,
        word_head=settings.word_head,
        norm_windows=settings.norm_windows,
    )
    mined_word = len(pipeline.word_classes)
    reduce_lr = ReduceLROnPlateau(
        settings.reduce_lr_monitor,
        settings.reduce_lr_factor,
        settings.reduce_lr_patience,
        settings.min_learning_rate,
    )
    stopping = EarlyStopping(settings.stopping_monitor or settings.monitor, settings.early_stopping_patience)
    # The kept epoch follows `monitor`; when stopping follows another metric, track it apart.
    selection = EarlyStopping(settings.monitor, patience=settings.epochs)
    history: list[dict[str, Any]] = []
    best_weights = trainer.model_weights()
    start_epoch, stopped = 0, False
    # Hard negatives mined so far (training.mining): extra `_unknown_` windows for every later epoch.
    mined = np.zeros((0, *spec.input_shape), np.int8)
    mining_rounds: list[dict[str, Any]] = []
    if checkpoint is not None:
        arrays, state = checkpoint
        mined = arrays.get("mined/features", mined)
        mining_rounds = state.get("mining_rounds", [])
        trainer.load_state({k: v for k, v in arrays.items() if not k.startswith(("best/", "mined/"))})
        best_weights = [arrays[f"best/{i}"] for i in range(len(best_weights))]
        reduce_lr = ReduceLROnPlateau.from_dict(state["reduce_lr"])
        stopping = EarlyStopping.from_dict(state["early_stopping"])
        selection = EarlyStopping.from_dict(state.get("selection", state["early_stopping"]))
        history = state["history"]
        start_epoch, stopped = state["epoch"] + 1, state["stopped"]
        logger.info("resumed after epoch %d", state["epoch"] + 1)

    writer = tf.summary.create_file_writer(str(artifacts.logs_dir / "train"))

    # The next epoch's features are rendered in a worker thread while this epoch trains
    # (numba and TensorFlow both release the GIL); each epoch depends only on (seed, epoch).
    def render(epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        features, labels = pipeline.epoch(epoch)
        return features, labels, pipeline.epoch_words(epoch) if settings.word_head else None

    with _progress(console, progress) as bars, ThreadPoolExecutor(1, thread_name_prefix="features") as pool:
        upcoming = pool.submit(render, start_epoch) if start_epoch < settings.epochs and not stopped else None
        for epoch in range(start_epoch, settings.epochs):
            if stopped:
                break
            stop_requests.raise_if_received()  # a stop a library swallowed ends the run here at the latest
            epoch_started = time.perf_counter()
            if settings.learning_rate_schedule == "cosine":
                trainer.learning_rate = cosine_learning_rate(
                    epoch,
                    settings.learning_rate,
                    settings.min_learning_rate,
                    settings.cosine_hold_epochs,
                    settings.epochs,
                )
            assert upcoming is not None
            if epoch == start_epoch:  # nothing to overlap with the first render but this
                trainer.warm_up(settings.batch_size)
            features, labels, words = upcoming.result()
            if epoch + 1 < settings.epochs:
                upcoming = pool.submit(render, epoch + 1)
            if len(mined):
                features = np.concatenate([features, mined])
                unknown = np.full(len(mined), spec.classes.index(UNKNOWN), labels.dtype)
                labels = np.concatenate([labels, unknown])
                if words is not None:
                    words = np.concatenate([words, np.full(len(mined), mined_word, words.dtype)])
            task = bars.add_task(f"epoch {epoch + 1}/{settings.epochs}", total=len(labels), stats="")
            train_started = time.perf_counter()

            def show(
                done: int, loss: float, accuracy: float, task: Any = task, since: float = train_started
            ) -> None:
                rate = done / max(time.perf_counter() - since, 1e-9)
                bars.update(
                    task, completed=done, stats=f"{rate:,.0f} samples/s  loss {loss:.4f}  acc {accuracy:.3f}"
                )

            rng = np.random.default_rng([seed, epoch, 0x5F1])
            result = trainer.train_epoch(
                features, labels, settings.batch_size, rng, on_chunk=show, words=words
            )
            train_seconds = time.perf_counter() - train_started
            # Evaluated, chosen and mined with the averaged weights when the spec averages them.
            with trainer.averaged_weights():
                metrics = _epoch_metrics(trainer, result, validation, stream)
                row = {
                    "epoch": epoch + 1,
                    **metrics,
                    "learning_rate": trainer.learning_rate,
                    "samples_per_second": round(result.samples / train_seconds, 1),
                    "seconds": round(time.perf_counter() - epoch_started, 3),
                }
                history.append(row)
                bars.update(
                    task,
                    stats=f"{row['samples_per_second']:,.0f} samples/s  loss {result.loss:.4f}  "
                    f"acc {result.accuracy:.3f}  val_acc {metrics['val_accuracy']:.3f}"
                    + (f"  stream {metrics['val_stream_score']:.3f}" if stream is not None else ""),
                )
                with writer.as_default(step=epoch + 1):
                    for key, value in {**metrics, "learning_rate": trainer.learning_rate}.items():
                        _scalar_summary(key, value)
                logger.info("epoch %d: %s", epoch + 1, {k: round(float(v), 5) for k, v in row.items()})
                _, stopped = stopping.on_epoch_end(epoch, metrics)
                is_best, _ = selection.on_epoch_end(epoch, metrics)
                if is_best:
                    best_weights = trainer.model_weights()
                if settings.learning_rate_schedule == "plateau":
                    trainer.learning_rate = reduce_lr.on_epoch_end(metrics, trainer.learning_rate)
                if stopped:
                    logger.info(
                        "early stopping after epoch %d (%s); best epoch %d (%s %.4f)",
                        epoch + 1,
                        stopping.monitor,
                        selection.best_epoch + 1,
                        selection.monitor,
                        selection.best,
                    )
                if _mining_due(settings, len(mining_rounds), epoch + 1, stopped):
                    from microspeech.training.mining import mine_hard_negatives

                    found = mine_hard_negatives(
                        trainer.predict_stream,
                        pipeline.dataset,
                        spec,
                        seed=seed,
                        round_number=len(mining_rounds) + 1,
                        after_epoch=epoch + 1,
                    )
                    mined = np.concatenate([mined, found.features])
                    mining_rounds.append(found.to_dict())
                    logger.info("hard-negative mining: %s", found.to_dict())
            arrays = trainer.state()
            arrays.update({f"best/{i}": w for i, w in enumerate(best_weights)})
            arrays["mined/features"] = mined
            save_checkpoint(
                artifacts.checkpoint_dir,
                arrays,
                {
                    "model": spec.name,
                    "seed": seed,
                    "dataset_fingerprint": fingerprint,
                    "dataset_roots": _dataset_roots(pipeline.dataset),
                    "epoch": epoch,
                    "stopped": stopped,
                    "reduce_lr": reduce_lr.to_dict(),
                    "early_stopping": stopping.to_dict(),
                    "selection": selection.to_dict(),
                    "history": history,
                    "mining_rounds": mining_rounds,
                    "settings": resume_settings(spec),
                    "layers": layers,
                },
            )
            _write_history(artifacts.history_path, history)
    writer.close()
    trainer.set_model_weights(best_weights)
    return trainer.model, history, selection.best_epoch + 1, mining_rounds


def _epoch_metrics(trainer: Any, result: Any, validation: Any, stream: Any) -> dict[str, float]:
    """The epoch's training loss and accuracy, the validation clips' scores and (with a validation
    stream) the stream metrics, from the weights the trainer holds now."""
    val_loss, val_accuracy, val_balanced = trainer.evaluate_balanced(validation.features, validation.labels)
    metrics = {
        "loss": result.loss,
        "accuracy": result.accuracy,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "val_balanced_accuracy": val_balanced,
    }
    if stream is not None:
        stream_score, point = stream.epoch_metrics(trainer.predict_stream(stream.inputs))
        metrics["val_stream_score"] = stream_score
        metrics["val_stream_plus_accuracy"] = stream_score + val_accuracy
        metrics["val_stream_hit_rate"] = point.hit_rate
        metrics["val_stream_fa_per_hour"] = point.fa_per_hour
        metrics["val_stream_threshold"] = point.detection_threshold
    return metrics


def _mining_due(settings: Any, rounds_done: int, epochs_done: int, stopped: bool) -> bool:
    """Whether a hard-negative mining round runs after this epoch (never after the last one)."""
    return (
        rounds_done < settings.mining_rounds
        and epochs_done % settings.mining_every == 0
        and not stopped
        and epochs_done < settings.epochs
    )


def _finish(
    spec: ModelSpec,
    artifacts: ModelArtifacts,
    keras_model: Any,
    representative: np.ndarray,
    manifest: dict[str, Any],
    console: Console,
    data: Any,
    stream: Any = None,
    progress: bool = True,
    calibration_runtime: str = "litert",
) -> None:
    """Save the .keras and the int8 .tflite (atomically), then the manifest that says they are complete."""
    from microspeech.tflite.convert import build_tflite
    from microspeech.tflite.parity import check_parity

    with atomic_output(artifacts.keras_path) as partial:
        keras_model.save(partial)
    tflite_bytes = build_tflite(keras_model, representative, spec.parameters(), seed=manifest["seed"])
    write_bytes_atomic(artifacts.tflite_path, tflite_bytes)
    # What the host measures must be what the part computes: the same bytes in every runtime,
    # up to one-step rounding ties (microspeech.tflite.parity says why those remain).
    parity = check_parity(tflite_bytes, representative)
    stop_requests.raise_if_received()
    if parity.rounding_only:
        logger.info("runtime parity on the validation features: %s", parity.describe())
        console.print(f"[green]runtime parity[/] on the validation clips: {parity.describe()}")
    else:
        logger.warning("runtime parity on the validation features: %s", parity.describe())
        console.print(f"[bold red]runtimes disagree[/] on the validation clips: {parity.describe()}")
    if stream is not None:
        from microspeech.training.stream_selection import (
            calibrate_detection,
            calibration_stream,
            calibration_stream_seed,
        )

        # A longer stream of its own, when the spec asks: the checkpoint stream chose this epoch.
        calibration_audio = (
            calibration_stream(data, spec, seed=manifest["seed"], show_progress=progress) or stream.stream
        )
        try:
            calibration = calibrate_detection(
                artifacts.tflite_path,
                calibration_audio,
                spec.train.max_fa_per_hour,
                backend=calibration_runtime,
                show_progress=progress,
            )
        except RuntimeError as error:  # the runtime refused the trained model: the files are there
            raise CalibrationError(str(error)) from error
        calibration = dataclasses.replace(
            calibration,
            stream_seed=calibration_stream_seed(manifest["seed"], spec),
            snr_db=tuple(spec.train.stream_conditions),
        )
        tflite_bytes = artifacts.tflite_path.read_bytes()  # the chosen parameters are in it now
        manifest["detection_calibration"] = calibration.to_dict()
        logger.info("detection calibration: %s", calibration.describe())
        if calibration.chosen is None or calibration.detects_nothing:  # over the budget, or finds nothing
            logger.warning("detection parameters over the budget or detecting nothing")
            console.print(f"[yellow]warning:[/] detection parameters {escape(calibration.describe())}")
        else:
            console.print(f"[green]detection parameters[/] {escape(calibration.describe())}")
    manifest.update(
        {
            "runtime_parity": parity.to_dict(),
            "spec": spec.to_dict(),
            "packages": package_versions(),
            "files": {
                "keras": artifacts.keras_path.name,
                "tflite": artifacts.tflite_path.name,
                "tflite_bytes": len(tflite_bytes),
            },
        }
    )
    artifacts.write_manifest(manifest)
    logger.info("wrote %s and %s (%d bytes)", artifacts.keras_path, artifacts.tflite_path, len(tflite_bytes))
    console.print(
        f"[green]trained[/] {spec.name}: best epoch {manifest['best_epoch']} of "
        f"{manifest['epochs_run']}, val_accuracy {manifest['best_val_accuracy']:.4f} -> "
        f"{artifacts.directory}"
    )
