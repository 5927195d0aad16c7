"""Streaming detection: speed of the firmware loop on one core, and miss rate / false accepts per hour.

Speed: `KeywordSpotter` (streaming frontend + one int8 inference + the recognizer every
100 ms hop) over a stream built from real test clips, pinned to one CPU with one thread,
best of --repeats. The reference does what MLTK's Python tools allow: its compiled
AudioFeatureGenerator has no streaming API, so each hop recomputes the newest second from a
fresh state (same inference and recognizer), which also loses the noise estimate's history.

Accuracy, the headline: `evaluate_streaming` on a --minutes stream of test-split clips over the
real background-noise recordings, one segment per condition (clean, 30, 20, 10, 5, 0 dB), for
MLTK's shipped tflite_micro_speech .tflite and for ours (--model), same stream: the miss rate at
the parameters embedded in each .tflite (no flags), per condition, and the best miss rate within
1 / 5 / 20 false accepts per hour; clip accuracy of the same models in the same run, and the
words with the most clip errors and the words that fire the detector; 20 clean "yes" clips 2 s
apart. Prints Markdown for BENCHMARKS.md and plots every model's miss-vs-FA curve.

    .venv/bin/python benchmarks/detection.py --model MODEL [--model MODEL ...] [--minutes 60]
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one core, before numba is imported

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bundles import (  # noqa: E402
    DEV_TEST_SET,
    SUBSET,
    check_output,
    description,
    machine_description,
    mltk_model_zip,
    run,
    shared_bundle,
)
from clean_keywords import clean_keyword_run  # noqa: E402
from microspeech.audio import SAMPLE_RATE  # noqa: E402
from microspeech.data import load_dataset  # noqa: E402
from microspeech.detection.classify import KeywordSpotter, apply_volume_gain  # noqa: E402
from microspeech.detection.detector import CommandRecognizer  # noqa: E402
from microspeech.evaluation.metrics import WordErrors  # noqa: E402
from microspeech.evaluation.streaming import (  # noqa: E402
    ThresholdPoint,
    best_within_budget,
    evaluate_streaming,
    plot_curves,
    resolve_keyword_model,  # noqa: E402
    stream_from_dataset,
)
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

    from microspeech.testing.mltk_oracle import MltkFrontend

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


def at_budget(curve: list[ThresholdPoint], max_fa_per_hour: float) -> str:
    """Lowest miss rate on the threshold curve within the false-accept budget."""
    best = best_within_budget(curve, max_fa_per_hour)
    if best is None:
        return "-"
    return f"{100 * best.score.miss_rate:.1f}% ({best.detection_threshold})"


def clip_accuracy(path: Path, dataset: str, output: Path) -> tuple[str, dict[str, WordErrors]]:
    """("accuracy / balanced", the int8 errors by spoken word)."""
    from microspeech.evaluation.evaluate import evaluate_model

    report = evaluate_model(
        path, tflite=True, dataset=dataset, output_dir=output, plots=False, show_progress=False
    )
    metrics = report.result("int8").metrics
    by_word = {entry.word: entry for entry in report.word_errors("int8")}
    return f"{100 * metrics.overall_accuracy:.2f}% / {100 * metrics.balanced_accuracy:.2f}%", by_word


def print_word_errors(errors: dict[str, dict[str, WordErrors]], count: int = 8) -> None:
    """The words with the most clip errors over all models: each model's share of that word's
    clips misclassified, and the class most of them were taken for."""
    totals = Counter()
    for by_word in errors.values():
        totals.update({word: entry.errors for word, entry in by_word.items()})
    words = [word for word, total in totals.most_common(count) if total]
    print("\nClip errors by spoken word (int8, same clips): share of its clips misclassified (taken for)\n")
    print("| model | " + " | ".join(words) + " |")
    print("|---" * (1 + len(words)) + "|")
    for label, by_word in errors.items():
        cells = []
        for word in words:
            entry = by_word[word]
            taken = next(iter(entry.predicted_as), "-")
            cells.append(f"{100 * entry.error_rate:.0f}% ({taken})")
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--model", action="append", default=[], help="our model(s): name, folder or .tflite")
    parser.add_argument("--dataset", help="clips for the streams (default: the dev test bundle)")
    parser.add_argument("--noise-dataset", help="background noise (default: the subset bundle's recordings)")
    parser.add_argument(
        "--minutes", type=float, default=60.0, help="stream length, split over the conditions"
    )
    parser.add_argument(
        "--conditions", default="clean,30,20,10,5,0", help="one segment each: clean or an SNR in dB"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-minutes", type=float, default=2.0, help="audio timed for speed (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU to pin to")
    parser.add_argument(
        "--output", type=Path, default=Path(tempfile.gettempdir()) / "microspeech-bench-detection"
    )
    args = parser.parse_args()
    # Every option and model checked before anything is printed or written, each error naming it.
    from microspeech.checks import check_int, check_minutes, check_seed, parse_snr_list

    check_minutes(args.minutes)
    if args.speed_minutes:
        check_minutes(args.speed_minutes, "--speed-minutes")
    check_seed(args.seed)
    check_int(args.repeats, "--repeats", low=1)
    check_output(args.output, "--output", "mltk", "ours-*", "miss_vs_fa.png")  # an earlier run's, or new
    conditions = parse_snr_list(args.conditions.replace("clean", "inf"), "--conditions", segmented=True)
    for option, folder in (("--dataset", args.dataset), ("--noise-dataset", args.noise_dataset)):
        if folder is not None and "/" in folder and not Path(folder).is_dir():
            raise ValueError(f"{option} {folder}: no such folder")
    try:
        ours = [resolve_keyword_model(name) for name in args.model]
    except ValueError as error:
        raise ValueError(f"--model: {error}") from None
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError as error:
            raise ValueError(f"--cpu {args.cpu}: cannot pin to it ({error.strerror})") from None
    dataset = args.dataset or str(shared_bundle(DEV_TEST_SET, HINT))
    noise = args.noise_dataset or str(shared_bundle(SUBSET, HINT))

    with zipfile.ZipFile(mltk_model_zip()) as archive:
        reference_path = args.output / "mltk" / "tflite_micro_speech.tflite"
        reference_path.parent.mkdir(parents=True, exist_ok=True)
        reference_path.write_bytes(archive.read("tflite_micro_speech.tflite"))
    models = [("MLTK tflite_micro_speech (shipped)", reference_path, "mltk")]
    for number, (name, model) in enumerate(zip(args.model, ours, strict=True), 1):
        models.append((f"ours: {name}", Path(model.source), f"ours-{number}"))
    print(machine_description())
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"pinned to CPU {args.cpu}, NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}\n"
    )

    if args.speed_minutes > 0:
        speed_stream, _, _ = stream_from_dataset(
            dataset,
            ["yes", "no"],
            minutes=args.speed_minutes,
            snr_db=[5, 10, 20],
            seed=args.seed,
            noise_dataset=noise,
            show_progress=False,
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

    names = ", ".join("clean" if c == float("inf") else f"{c:g} dB" for c in conditions)
    print(
        f"\nStream: {args.minutes:g} min of {Path(dataset).name} test clips (half keywords, half other "
        f"words) over {Path(noise).name} noise, one {args.minutes / len(conditions):g}-min segment per "
        f"condition ({names}), seed {args.seed}. At the embedded parameters: the firmware loop (a "
        "detection resets the frontend). Budget columns: the detection_threshold swept at the embedded "
        "window and minimum count (detector replayed without resets). Clip accuracy: int8 on every clip "
        "of the same test set, same run. 20 yes: 20 clean test clips of yes, 2 s of silence apart, "
        "embedded parameters.\n"
    )
    budgets = (1.0, 5.0, 20.0)
    print(
        "| model | clip acc. / balanced | embedded: threshold / window / count | miss rate (FA/h) | "
        + " | ".join(f"miss {'clean' if c == float('inf') else f'{c:g} dB'}" for c in conditions)
        + " | "
        + " | ".join(f"miss at <= {b:g} FA/h (thr)" for b in budgets)
        + " | 20 yes: found / FA |"
    )
    print("|---" * (5 + len(conditions) + len(budgets)) + "|")
    curves = {}
    word_errors: dict[str, dict[str, WordErrors]] = {}
    false_accept_words: dict[str, dict[str, int]] = {}
    for label, path, folder in models:
        report = evaluate_streaming(
            path,
            dataset=dataset,
            noise_dataset=noise,
            minutes=args.minutes,
            snr_db=conditions,
            seed=args.seed,
            output_dir=args.output / folder,
            show_progress=False,
            segmented=True,
        )
        curves[label] = report.curve
        false_accept_words[label] = report.false_accepts_by_word
        params = report.params
        embedded = " / ".join(
            str(getattr(params, key))
            for key in ("detection_threshold", "average_window_duration_ms", "minimum_count")
        )
        per_condition = [  # "-": no keyword fell in that condition's segment (a short stream)
            f"{100 * report.per_snr[f'{c:g}'].miss_rate:.1f}%" if f"{c:g}" in report.per_snr else "-"
            for c in conditions
        ]
        yes = clean_keyword_run(path, load_dataset(dataset), "test", "yes", count=20)
        accuracy, word_errors[label] = clip_accuracy(path, dataset, args.output / folder / "clips")
        print(
            f"| {label} | {accuracy} | {embedded} "
            f"| {100 * report.miss_rate:.1f}% ({report.fa_per_hour:.1f}) | "
            + " | ".join(per_condition)
            + " | "
            + " | ".join(at_budget(report.curve, b) for b in budgets)
            + f" | {yes.found}/{yes.clips} / {yes.false_accepts} |"
        )
    print_word_errors(word_errors)
    print("\nFalse accepts at the embedded parameters, by the word playing:\n")
    for label, by_word in false_accept_words.items():
        print(f"- {label}: " + (", ".join(f"{word} {count}" for word, count in by_word.items()) or "none"))
    png = plot_curves(curves, f"{args.minutes:g} min, {names}", max_fa_per_hour=100)
    (args.output / "miss_vs_fa.png").write_bytes(png)
    print(f"\nReports: {args.output}/{{mltk,ours-N}}/streaming.json; curves: {args.output}/miss_vs_fa.png")


if __name__ == "__main__":
    run(main)
