"""Which validation stream to calibrate the detection parameters on, judged on another validation stream.

    .venv/bin/python benchmarks/calibration_stream.py MODEL_FOLDER [MODEL_FOLDER ...] [--minutes 120]

For each trained model folder (its weights stay as they are), the calibration `microspeech train`
runs at its end (`training.stream_selection.calibrate_detection`, budget = the spec's
`max_fa_per_hour`) on two streams of the validation split: the 30-minute checkpoint stream (the
calibration before `TrainSettings.calibration_minutes`) and a calibration stream of its own of
`--minutes`. Each chosen setting then runs in the firmware loop on a third validation stream
(`--check-minutes`, seed offset `--check-offset`, as `validation_diagnosis.py --stream-offset`
builds it): what the parameters written into the .tflite do on audio they were not chosen on.
The best miss rates a threshold sweep reaches on that stream at <= 2 and <= 5 FA/h are printed
beside them. No test clip is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bundles import (
    SUBSET,
    description,
    machine_description,
    resolve_models,
    run,
    shared_bundle,
    stream_minutes,
)
from validation_scoring import best_misses

KEYS = ("detection_threshold", "average_window_duration_ms", "minimum_count", "suppression_ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument(
        "--minutes", type=stream_minutes, default=120.0, help="the calibration stream of its own"
    )
    parser.add_argument(
        "--checkpoint-minutes", type=stream_minutes, default=30.0, help="the checkpoint stream"
    )
    parser.add_argument(
        "--check-minutes", type=stream_minutes, default=120.0, help="the stream the choice is judged on"
    )
    parser.add_argument("--check-offset", type=int, default=1000, help="its seed offset")
    args = parser.parse_args()
    # Every folder checked before any work: a bad one stopped the run after the models before it.
    models = resolve_models(args.models, "MODEL_FOLDER", trained=True)
    for folder, model in zip(args.models, models, strict=True):
        if not 0 <= model.manifest["seed"] + args.check_offset < 2**32:
            parser.error(
                f"--check-offset {args.check_offset}: {folder}'s seed plus it is out of 0 to 2**32 - 1"
            )
    print(machine_description(), flush=True)
    from microspeech.data import load_dataset
    from microspeech.data.streams import score_detections
    from microspeech.detection.classify import KeywordSpotter
    from microspeech.detection.keyword_model import load_keyword_model
    from microspeech.detection.stream_run import run_spotter
    from microspeech.training.stream_selection import (
        ValidationStream,
        calibrate_detection,
        calibration_stream,
    )

    dataset = load_dataset(shared_bundle(SUBSET))
    scratch = Path(tempfile.mkdtemp(prefix="calibration-stream-"))
    summary: dict[str, list[tuple[float, float]]] = {}
    try:
        for folder, model in zip(args.models, models, strict=True):
            spec, seed = model.spec, model.manifest["seed"]
            budget = spec.train.max_fa_per_hour
            train = dataclasses.replace(
                spec.train,
                stream_validation_minutes=args.checkpoint_minutes,
                calibration_minutes=args.minutes,
            )
            spec = dataclasses.replace(spec, train=train)
            check_spec = dataclasses.replace(
                spec, train=dataclasses.replace(train, stream_validation_minutes=args.check_minutes)
            )
            check = ValidationStream.build(dataset, check_spec, seed=seed + args.check_offset).stream
            keyword_model = load_keyword_model(model.tflite_path)
            recorder = KeywordSpotter(keyword_model, reset_after_detection=False)
            reference, _ = run_spotter(recorder, check, "scoring the check stream", False, record=True)
            best = best_misses(check, reference, keyword_model, (2, 5))
            print(
                f"\n## {folder} ({spec.name}, seed {seed}); check stream {args.check_minutes:g} min: "
                f"best miss at <= 2 FA/h {100 * best[2]:.1f}%, at <= 5 FA/h {100 * best[5]:.1f}%",
                flush=True,
            )
            streams = {
                f"checkpoint stream ({args.checkpoint_minutes:g} min)": ValidationStream.build(
                    dataset, spec, seed=seed
                ).stream,
                f"stream of its own ({args.minutes:g} min)": calibration_stream(dataset, spec, seed=seed),
            }
            for name, stream in streams.items():
                copy = scratch / f"{folder.name}.tflite"
                shutil.copyfile(model.tflite_path, copy)
                started = time.perf_counter()
                calibration = calibrate_detection(copy, stream, budget, show_progress=False)
                seconds = time.perf_counter() - started
                chosen = calibration.chosen or calibration.spec_params
                spotter = KeywordSpotter(load_keyword_model(copy))  # its new parameters, resets on
                run, _ = run_spotter(spotter, check, "checking", False, reference=reference)
                score = score_detections(
                    check.events, run.detections, check.seconds, tolerance_ms=1500
                ).summary()
                summary.setdefault(name, []).append((score.miss_rate, score.fa_per_hour))
                there = chosen.firmware
                print(
                    f"calibrated on the {name} in {seconds:.1f} s: "
                    + " / ".join(str(getattr(chosen.setting, key)) for key in KEYS)
                    + " (threshold / window / count / suppression); "
                    f"there {100 * there.miss_rate:.1f}% missed at {there.fa_per_hour:.1f} FA/h; "
                    f"on the check stream {100 * score.miss_rate:.1f}% missed at "
                    f"{score.fa_per_hour:.2f} FA/h",
                    flush=True,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n## Mean over {len(args.models)} models, on the check stream (budget {budget:g} FA/h)")
    for name, results in summary.items():
        misses, rates = np.array(results).T
        print(
            f"calibrated on the {name}: {100 * misses.mean():.1f}% missed, {rates.mean():.2f} FA/h "
            f"(range {rates.min():.1f}-{rates.max():.1f}; "
            f"over twice the budget: {int((rates > 2 * budget).sum())} of {len(rates)})"
        )


if __name__ == "__main__":
    run(main)
