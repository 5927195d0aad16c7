"""Streaming detection: speed of the firmware loop on one core, and miss rate / false accepts per hour.

Speed: `KeywordSpotter` (streaming frontend + one int8 inference + the recognizer every
100 ms hop) over a stream built from real test clips, pinned to one CPU with one thread,
best of --repeats. The reference does what MLTK's Python tools allow: its compiled
AudioFeatureGenerator has no streaming API, so each hop recomputes the newest second from a
fresh state (same inference and recognizer), which also loses the noise estimate's history.

Accuracy: `evaluate_streaming` on a --minutes stream of test-split clips over the real
background-noise recordings, for MLTK's shipped tflite_micro_speech .tflite and for ours
(--model), same stream. Prints Markdown for BENCHMARKS.md.

    .venv/bin/python benchmarks/detection.py [--model tflite_micro_speech] [--minutes 30]
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one core, before numba is imported

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bundles import DEV_TEST_SET, MLTK_ZIP, SUBSET, shared_bundle  # noqa: E402
from microspeech.audio import SAMPLE_RATE  # noqa: E402
from microspeech.detection.classify import KeywordSpotter, apply_volume_gain, load_keyword_model  # noqa: E402
from microspeech.detection.detector import CommandRecognizer  # noqa: E402
from microspeech.evaluation.streaming import evaluate_streaming, stream_from_dataset  # noqa: E402
from microspeech.frontend import StreamingFrontend, uint16_to_int8  # noqa: E402

HINT = "pass --dataset and --noise-dataset"


def best_of(repeats: int, run) -> float:
    run()  # warm-up: numba compilation, interpreter allocation, caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def speed(model_path: Path, audio: np.ndarray, repeats: int) -> dict[str, float]:
    """Seconds per second of audio for ours, its parts, and the recompute-the-window reference."""
    spotter = KeywordSpotter(model_path, reset_after_detection=False)
    hop = spotter.hop_samples
    usable = len(audio) // hop * hop
    audio = audio[:usable]
    seconds = usable / SAMPLE_RATE
    hops = [audio[start : start + hop] for start in range(0, usable, hop)]

    def ours() -> None:
        spotter.reset()
        for chunk in hops:
            spotter.process(chunk)

    settings = spotter.model.frontend_settings
    frontend = StreamingFrontend(settings)

    def frontend_only() -> None:
        frontend.reset()
        for chunk in hops:
            frontend.process(chunk)

    features = uint16_to_int8(np.zeros((settings.n_frames, settings.n_channels), np.uint16), settings)

    def inference_only() -> None:
        for _ in hops:
            spotter.runner.predict_one(features)

    scores = spotter.runner.predict_one(features)
    recognizer = CommandRecognizer(spotter.classes, spotter.params)

    def recognizer_only() -> None:
        recognizer.reset()
        for step in range(len(hops)):
            recognizer.process(scores, step * spotter.params.latency_ms)

    from microspeech.frontend.mltk_oracle import MltkFrontend

    mltk_frontend = MltkFrontend(settings)
    gained = apply_volume_gain(audio, spotter.params.volume_gain)
    reference_recognizer = CommandRecognizer(spotter.classes, spotter.params)

    def reference() -> None:
        reference_recognizer.reset()
        window = np.zeros(SAMPLE_RATE, np.int16)
        for step, start in enumerate(range(0, usable, hop)):
            window = np.concatenate([window[hop:], gained[start : start + hop]])
            u16 = mltk_frontend.process_sample(window)
            output = spotter.runner.predict_one(uint16_to_int8(u16, settings))
            reference_recognizer.process(output, (step + 1) * spotter.params.latency_ms)

    return {
        "ours": best_of(repeats, ours) / seconds,
        "frontend": best_of(repeats, frontend_only) / seconds,
        "inference": best_of(repeats, inference_only) / seconds,
        "recognizer": best_of(repeats, recognizer_only) / seconds,
        "reference": best_of(repeats, reference) / seconds,
        "hops_per_second": 1000 / spotter.params.latency_ms,
    }


def at_budget(curve: list[dict], max_fa_per_hour: float) -> str:
    """Lowest miss rate on the threshold curve within the false-accept budget."""
    within = [p for p in curve if p["fa_per_hour"] <= max_fa_per_hour]
    if not within:
        return "-"
    best = min(within, key=lambda p: (p["miss_rate"], -p["detection_threshold"]))
    return f"{100 * best['miss_rate']:.1f}% ({best['detection_threshold']})"


def tuned_rows(args, models, dataset: str, noise: str, snrs: list[float]) -> None:
    """Tune on the validation split of the noise dataset, then score the pick on the test stream."""
    from microspeech.detection.tuning import TUNED_KEYS, tune_detection

    print(
        f"\nTuned with `tune --max-fa-per-hour {args.tune_budget:g}` on {args.tune_minutes:g} min of "
        f"{Path(noise).name} validation clips (seed {args.seed + 1}), then scored on the test stream above.\n"
    )
    print(
        "| model | tuned threshold / window / count | hits | miss rate | false accepts | FA/h "
        "| per SNR miss rate |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, path, folder in models:
        tuned = tune_detection(
            path,
            max_fa_per_hour=args.tune_budget,
            dataset=noise,
            split="validation",
            minutes=args.tune_minutes,
            snr_db=snrs,
            seed=args.seed + 1,
            show_progress=False,
        )
        chosen = tuned["chosen"]
        if chosen is None:
            print(f"| {label} | nothing within {args.tune_budget:g} FA/h | | | | | |")
            continue
        override = {key: chosen[key] for key in TUNED_KEYS}
        report = evaluate_streaming(
            path,
            dataset=dataset,
            noise_dataset=noise,
            minutes=args.minutes,
            snr_db=snrs,
            seed=args.seed,
            output_dir=args.output / f"{folder}-tuned",
            params_override=override,
            show_progress=False,
        )
        per_snr = ", ".join(f"{snr} dB {100 * v['miss_rate']:.0f}%" for snr, v in report["per_snr"].items())
        setting = " / ".join(str(override[key]) for key in TUNED_KEYS)
        print(
            f"| {label} | {setting} | {report['hits']} | {100 * report['miss_rate']:.1f}% "
            f"| {report['false_accepts']} | {report['fa_per_hour']:.1f} | {per_snr} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="our model(s): name, folder or .tflite")
    parser.add_argument("--dataset", help="clips for the streams (default: the dev test bundle)")
    parser.add_argument("--noise-dataset", help="background noise (default: the subset bundle's recordings)")
    parser.add_argument("--minutes", type=float, default=30.0, help="stream length for FA/h and miss rate")
    parser.add_argument("--snr-db", default="5,10,20", help="keyword-to-noise ratios, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-minutes", type=float, default=2.0, help="audio timed for speed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU to pin to")
    parser.add_argument(
        "--tune-budget",
        type=float,
        default=2.0,
        help="also tune each model for this FA/h on the noise dataset's validation split (-1: skip)",
    )
    parser.add_argument("--tune-minutes", type=float, default=30.0)
    parser.add_argument(
        "--output", type=Path, default=Path(tempfile.gettempdir()) / "microspeech-bench-detection"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    dataset = args.dataset or str(shared_bundle(DEV_TEST_SET, HINT))
    noise = args.noise_dataset or str(shared_bundle(SUBSET, HINT))
    snrs = [float(v) for v in args.snr_db.split(",")]

    with zipfile.ZipFile(MLTK_ZIP) as archive:
        reference_path = args.output / "mltk" / "tflite_micro_speech.tflite"
        reference_path.parent.mkdir(parents=True, exist_ok=True)
        reference_path.write_bytes(archive.read("tflite_micro_speech.tflite"))
    models = [("MLTK tflite_micro_speech (shipped)", reference_path, "mltk")]
    for number, name in enumerate(args.model, 1):
        model = load_keyword_model(name)
        models.append((f"ours: {name}", Path(model.source), f"ours-{number}"))

    speed_stream, _, _ = stream_from_dataset(
        dataset,
        ["yes", "no"],
        minutes=args.speed_minutes,
        snr_db=snrs,
        seed=args.seed,
        noise_dataset=noise,
        show_progress=False,
    )
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"pinned to CPU {args.cpu}, NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}\n"
    )
    print(
        "| model | ours: x real time | µs per 100 ms hop (frontend / inference / recognizer) "
        "| reference: x real time | speed-up |"
    )
    print("|---|---|---|---|---|")
    for label, path, _ in models:
        s = speed(path, speed_stream.audio, args.repeats)
        per_hop = 1e6 / s["hops_per_second"]
        parts = " / ".join(f"{s[key] * per_hop:.0f}" for key in ("frontend", "inference", "recognizer"))
        print(
            f"| {label} | {1 / s['ours']:.0f}x | {s['ours'] * per_hop:.0f} ({parts}) "
            f"| {1 / s['reference']:.0f}x | {s['reference'] / s['ours']:.1f}x |"
        )

    print(
        f"\nStream: {args.minutes:g} min of {Path(dataset).name} test clips over {Path(noise).name} noise, "
        f"SNR {args.snr_db} dB, seed {args.seed}. Hits, misses and FA/h: embedded detection parameters, "
        "firmware loop. Budget columns: the threshold curve (detector replayed without resets).\n"
    )
    budgets = (1.0, 5.0, 20.0)
    print(
        "| model | keywords | hits | miss rate | false accepts | FA/h | per SNR miss rate | "
        + " | ".join(f"miss rate at <= {b:g} FA/h (threshold)" for b in budgets)
        + " | x real time |"
    )
    print("|---" * (7 + len(budgets) + 1) + "|")
    for label, path, folder in models:
        report = evaluate_streaming(
            path,
            dataset=dataset,
            noise_dataset=noise,
            minutes=args.minutes,
            snr_db=snrs,
            seed=args.seed,
            output_dir=args.output / folder,
            show_progress=False,
        )
        per_snr = ", ".join(f"{snr} dB {100 * v['miss_rate']:.0f}%" for snr, v in report["per_snr"].items())
        print(
            f"| {label} | {report['keywords']} | {report['hits']} | {100 * report['miss_rate']:.1f}% "
            f"| {report['false_accepts']} | {report['fa_per_hour']:.1f} | {per_snr} | "
            + " | ".join(at_budget(report["curve"], b) for b in budgets)
            + f" | {report['x_realtime']:.0f}x |"
        )
    if args.tune_budget >= 0:
        tuned_rows(args, models, dataset, noise, snrs)
    print(f"\nReports: {args.output}/{{mltk,ours-N}}/streaming.json and streaming_miss_vs_fa.png")


if __name__ == "__main__":
    main()
