"""Scoring a long stream, as `train`'s calibration, `tune` and `evaluate --streaming` do it, against
the firmware loop run hop by hop (how they all ran it before), in one run on one machine.

The stream is `train`'s calibration stream: `--minutes` of the subset bundle's validation split
at the spec's conditions, built as `microspeech train` builds it for `--seed`. The model is MLTK's
shipped tflite_micro_speech .tflite unless `--model` names another. Timed, best of `--repeats`:

- the scoring pass (no resets; every inference's scores, the frontend state after each):
  reference = `KeywordSpotter.process` hop by hop over 1 s chunks; ours = `run_stream(record=True)`
  (whole passes of hops through the frontend kernel, batched LiteRT inference, compiled recognizer);
- a firmware check (resets after detections, at the model's own parameters): reference = the
  plain loop; ours = `run_stream(reference=...)`, which computes only what the resets change;
- calibration as `train` runs it (`calibrate_detection`'s `tune_on_stream`), ours only;
- the float model on `train`'s validation stream (`--validation-minutes`, 30 as `train`), as each
  epoch's metrics and mining score it: reference = `FastTrainer.predict` (Keras, input by input,
  two threads); ours = `FastTrainer.predict_stream` (the first convolution shared between
  overlapping inputs, training.stream_scoring). The model is `--keras-model` or, by default, the
  seed model as built (untrained: the arithmetic is the same).

Each pair of the firmware loop must give identical scores and detections; the float pair the same
epoch metrics (uint8 scores may differ by a step where a float sits on a rounding boundary). The
script stops otherwise.

    .venv/bin/python benchmarks/stream_scoring.py [--model X.tflite] [--keras-model X.keras]
        [--minutes 120] [--validation-minutes 30] [--repeats 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bundles import (
    SUBSET,
    description,
    machine_description,
    mltk_model_zip,
    positive_int,
    run,
    seed_number,
    shared_bundle,
    stream_minutes,
)
from microspeech.data import load_dataset
from microspeech.detection.classify import KeywordSpotter
from microspeech.detection.keyword_model import load_keyword_model
from microspeech.detection.stream_run import StreamRun, run_stream
from microspeech.models import get_model_spec
from microspeech.training import stream_selection


def hop_by_hop(spotter: KeywordSpotter, audio: np.ndarray) -> StreamRun:
    """The firmware loop fed a second at a time, every hop through `process`: the reference."""
    spotter.reset()
    times, scores, detections = [], [], []
    for start in range(0, len(audio), 16000):
        for decision in spotter.process(audio[start : start + 16000]):
            times.append(decision.time_ms)
            scores.append(decision.scores_u8)
            if decision.is_detection:
                detections.append((decision.time_ms, decision.class_index, decision.score))
    return StreamRun(np.asarray(times, np.int64), np.stack(scores), detections)  # type: ignore[arg-type]


def timed(repeats: int, run):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def same(ours: StreamRun, reference: StreamRun) -> bool:
    found = [(d.time_ms, d.class_index, d.score) for d in ours.detections]
    return (
        np.array_equal(ours.times_ms, reference.times_ms)
        and np.array_equal(ours.scores, reference.scores)
        and found == reference.detections
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--model", type=Path, help="an int8 keyword .tflite (default: MLTK's shipped model)")
    parser.add_argument(
        "--minutes", type=stream_minutes, default=120.0, help="stream length (train's default: 120)"
    )
    parser.add_argument(
        "--seed", type=seed_number, default=0, help="the train seed whose calibration stream to build"
    )
    parser.add_argument("--repeats", type=positive_int, default=2, help="best of this many timed runs")
    parser.add_argument(
        "--keras-model", type=Path, help="a float tflite_micro_speech .keras (default: as built)"
    )
    parser.add_argument(
        "--validation-minutes",
        type=stream_minutes,
        default=30.0,
        help="float scoring's stream (train's default: 30)",
    )
    args = parser.parse_args()
    for option, path in (("--model", args.model), ("--keras-model", args.keras_model)):
        if path is not None and not path.is_file():  # the .keras was loaded last of all
            parser.error(f"{option} {path}: no such file")

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine_description()}")
    model = load_keyword_model(args.model or mltk_model_zip())
    spec = get_model_spec("tflite_micro_speech")
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, calibration_minutes=args.minutes))
    dataset = load_dataset(str(shared_bundle(SUBSET)))
    started = time.perf_counter()
    stream = stream_selection.calibration_stream(dataset, spec, seed=args.seed)
    assert stream is not None
    print(
        f"model {model.source}; stream {stream.seconds / 60:.1f} min of the subset's validation split "
        f"(built in {time.perf_counter() - started:.1f} s), {len(stream.audio) // 1600} inferences"
    )

    recorder = KeywordSpotter(model, reset_after_detection=False)
    recorder.process(np.zeros(16000, np.int16))  # numba compilation and allocation before timing
    reference_pass_s, reference_pass = timed(args.repeats, lambda: hop_by_hop(recorder, stream.audio))
    ours_pass_s, recorded = timed(args.repeats, lambda: run_stream(recorder, stream.audio, record=True))
    if not same(recorded, reference_pass):
        raise SystemExit("error: the scoring pass differs from the hop-by-hop loop")

    firmware = KeywordSpotter(model)
    reference_check_s, reference_check = timed(args.repeats, lambda: hop_by_hop(firmware, stream.audio))
    follower = KeywordSpotter(model)
    ours_checks = []
    for _ in range(args.repeats):
        # A fresh recording each time: the outputs after each reset are cached on it.
        fresh = run_stream(recorder, stream.audio, record=True)
        follower.inferences = 0
        started = time.perf_counter()
        checked = run_stream(follower, stream.audio, reference=fresh)
        ours_checks.append(time.perf_counter() - started)
    ours_check_s = min(ours_checks)
    if not same(checked, reference_check):
        raise SystemExit("error: the followed firmware check differs from the plain loop")

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "model.tflite"  # calibration writes the parameters it chooses into it
        copy.write_bytes(model.tflite_bytes)
        started = time.perf_counter()
        calibration = stream_selection.calibrate_detection(
            copy, stream, spec.train.max_fa_per_hour, show_progress=False
        )
        calibration_s = time.perf_counter() - started

    float_rows = float_scoring(dataset, spec, args)
    detections = len(reference_check.detections)
    print()
    print("| step | reference: hop by hop | ours | speed-up |")
    print("|---|---|---|---|")
    print(
        f"| scoring pass, no resets ({len(recorded.times_ms):,} inferences) | {reference_pass_s:.2f} s "
        f"| {ours_pass_s:.2f} s | **{reference_pass_s / ours_pass_s:.1f}x** |"
    )
    print(
        f"| firmware check at the model's parameters ({detections} detections, {follower.inferences:,} "
        f"inferences after resets) | {reference_check_s:.2f} s | {ours_check_s:.2f} s "
        f"| **{reference_check_s / ours_check_s:.1f}x** |"
    )
    print(f"\nidentical scores and detections in both pairs. `train`'s calibration: {calibration_s:.1f} s")
    print(f"({calibration.describe()})")
    print()
    print("| float model, each epoch | reference: Keras, input by input | ours: shared conv | speed-up |")
    print("|---|---|---|---|")
    print(float_rows)


def float_scoring(dataset, spec, args) -> str:
    """The float pair: timed, compared, as one table row."""
    import keras

    from microspeech.detection.detector import scores_to_uint8
    from microspeech.training.loop import FastTrainer
    from microspeech.training.trainer import configure_threads

    configure_threads()  # as `train` runs TensorFlow
    train = dataclasses.replace(spec.train, stream_validation_minutes=args.validation_minutes)
    stream = stream_selection.ValidationStream.build(
        dataset, dataclasses.replace(spec, train=train), seed=args.seed
    )
    keras.utils.set_random_seed(0)
    model = keras.models.load_model(args.keras_model) if args.keras_model else spec.build_model()
    trainer = FastTrainer(model, 1e-3, [1.0] * len(spec.classes))
    trainer.predict(stream.inputs.features[:4096])  # TensorFlow's tracing before timing
    trainer.predict_stream(stream.inputs)  # and numba's loading
    keras_s, keras_scores = timed(args.repeats, lambda: trainer.predict(stream.inputs.features))
    shared_s, shared_scores = timed(args.repeats, lambda: trainer.predict_stream(stream.inputs))
    steps = int(np.count_nonzero(scores_to_uint8(shared_scores) != scores_to_uint8(keras_scores)))
    if stream.epoch_metrics(shared_scores) != stream.epoch_metrics(keras_scores):
        raise SystemExit("error: the shared convolution's scores give other epoch metrics than Keras'")
    count, largest = len(stream.inputs.times_ms), np.abs(shared_scores - keras_scores).max()
    return (
        f"| {args.validation_minutes:g}-min validation stream ({count:,} inputs; max difference "
        f"{largest:.1e}, {steps} of {keras_scores.size:,} uint8 scores a step apart, the same epoch "
        f"metrics) | {keras_s:.3f} s | {shared_s:.3f} s | **{keras_s / shared_s:.1f}x** |"
    )


if __name__ == "__main__":
    run(main)
