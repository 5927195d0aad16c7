"""Detection calibrated with LiteRT's scores (as `train` does by default) or with Silicon Labs' TFLM
(`train --calibration-runtime silabs-tflm`): what each operating point does on the part.

Per trained model folder: its calibration stream is built again (the validation split of the subset
bundle, the spec's length and segments, the run's seed), two copies of its .tflite are calibrated
on it, one on each runtime, and both are run in Silicon Labs' TFLM (the part's kernels):
- on the calibration stream: how far the LiteRT calibration's own figure (what `train` records)
  is from what the part does with the same parameters;
- on the detection benchmark's stream (dev-bundle keywords and other words, the subset's noise,
  one segment each clean, 30, 20, 10, 5 and 0 dB): hits and false accepts per hour of each.
The LiteRT calibration is also compared with the one the manifest records (it must be the same).

    .venv/bin/python benchmarks/calibration_runtime.py MODEL_FOLDER [...] [--minutes 60] [--seed 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bundles import (
    DEV_TEST_SET,
    HEADLINE_CONDITIONS,
    SUBSET,
    headline_stream,
    machine_description,
    resolve_models,
    run,
    seed_number,
    shared_bundle,
)

RUNTIMES = ("litert", "silabs-tflm")


def _on_the_part(tflite: Path, stream) -> str:  # noqa: ANN001 (KeywordStream)
    """Hits / keywords, false accepts and FA/h of the firmware loop in Silicon Labs' TFLM."""
    from microspeech.data.streams import score_detections
    from microspeech.detection.classify import KeywordSpotter
    from microspeech.detection.keyword_model import load_keyword_model
    from microspeech.detection.stream_run import run_stream

    # A recorded pass without resets (batched), then the firmware loop following it: the plain
    # loop's result (tests/detection/test_stream_run.py), at a fraction of the inferences.
    spotter = KeywordSpotter(load_keyword_model(tflite), backend="silabs-tflm", reset_after_detection=False)
    recorded = run_stream(spotter, stream.audio, record=True)
    spotter.reset_after_detection = True
    run = run_stream(spotter, stream.audio, reference=recorded)
    score = score_detections(stream.events, run.detections, stream.seconds)
    summary = score.summary()
    return (
        f"{summary.hits}/{summary.hits + summary.misses} ({100 * summary.miss_rate:.1f}% missed), "
        f"{summary.false_accepts} FA, {summary.fa_per_hour:.2f} FA/h"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path, help="trained model folders (with manifest.json)")
    parser.add_argument("--minutes", type=float, default=60.0, help="benchmark stream length (default 60)")
    parser.add_argument("--seed", type=seed_number, default=3, help="benchmark stream seed (default 3)")
    args = parser.parse_args()
    if not 0 < args.minutes <= 240:
        parser.error(f"--minutes {args.minutes:g}: expected above 0 and at most 240")
    # Every folder checked before any work: a bad second one stopped after the first's calibrations.
    models = resolve_models(args.models, "MODEL_FOLDER", trained=True)
    for folder, model in zip(args.models, models, strict=True):
        if not model.manifest.get("detection_calibration"):
            parser.error(f"{folder}: no detection calibration in its manifest")
    from microspeech.data import load_dataset
    from microspeech.tflite.runtime import check_backend
    from microspeech.training.stream_selection import (
        ValidationStream,
        calibrate_detection,
        calibration_stream,
    )

    check_backend("silabs-tflm", "silabs-tflm")
    print(machine_description(), flush=True)
    subset = load_dataset(str(shared_bundle(SUBSET)))
    print(
        f"benchmark stream: {args.minutes:g} min of {DEV_TEST_SET} (seed {args.seed}), noise of {SUBSET}, "
        f"segments {', '.join(f'{c:g}' for c in HEADLINE_CONDITIONS)} dB; every figure below from the "
        "firmware loop, with its resets"
    )
    for folder, model in zip(args.models, models, strict=True):
        spec, manifest = model.spec, model.manifest
        seed = manifest["seed"]
        recorded = manifest["detection_calibration"]
        stream = calibration_stream(subset, spec, seed=seed)
        stream = stream or ValidationStream.build(subset, spec, seed=seed).stream
        benchmark = headline_stream(spec.classes, args.minutes, args.seed)
        print(f"\n## {folder} ({spec.name}, seed {seed}; calibration stream {stream.seconds / 60:.0f} min)")
        print(
            "\n| calibrated with | parameters | calibration stream: as recorded | the same on the part | "
            "benchmark stream on the part | seconds |"
        )
        print("|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as scratch:
            for runtime in RUNTIMES:
                copy = Path(scratch) / f"{runtime}.tflite"
                copy.write_bytes(model.tflite_path.read_bytes())
                started = time.perf_counter()
                calibration = calibrate_detection(
                    copy, stream, spec.train.max_fa_per_hour, backend=runtime, show_progress=False
                )
                seconds = time.perf_counter() - started
                picked = calibration.chosen or calibration.spec_params
                # Recalibrated on LiteRT, the model must get the parameters `train` recorded.
                again = json.loads(json.dumps(calibration.to_dict()["chosen"]))
                if runtime == "litert" and again != recorded["chosen"]:
                    print(f"note: LiteRT's calibration differs from the manifest's {recorded['chosen']}")
                setting, firmware = picked.setting, picked.firmware
                window = setting.average_window_duration_ms
                print(
                    f"| {runtime} | {setting.detection_threshold} / {window} ms / "
                    f"{setting.minimum_count} / {setting.suppression_ms} ms | "
                    f"{100 * firmware.miss_rate:.1f}% missed, {firmware.fa_per_hour:.2f} FA/h | "
                    f"{_on_the_part(copy, stream)} | {_on_the_part(copy, benchmark)} | {seconds:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    run(main)
