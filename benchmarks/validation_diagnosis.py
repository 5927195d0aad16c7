"""Where a trained model errs on the *validation* split: clip confusions by word, and the stream.

    .venv/bin/python benchmarks/validation_diagnosis.py MODEL_FOLDER [MODEL_FOLDER ...]

For choosing recipe changes without the test set: per model, int8 (LiteRT) clip accuracy and
balanced accuracy on the validation clips as training sees them (`TrainingPipeline.validation`,
fresh frontend, unknown balanced), the confusions by source word, and the validation stream's
calibrated operating point and best miss rates within 2 / 6 / 20 FA/h (from the manifest and a
threshold sweep at the calibrated window and count on the same stream). With `--peaks`, also how
high keywords and other words score on that stream: per condition, the percentiles of each word's
peak window average (at the calibrated window) and the share at or above the calibrated threshold,
and the other words that come closest to firing. With `--volume-gain G`, the stream is scaled by G
before the frontend, as the part scales it, instead of the .tflite's embedded gain.
Each model also classifies noise slices from RMS 10 to 10,000 (about -10 dBFS; `_silence_` is right),
and runs every validation clip of each keyword one after another, 2 s of silence apart,
at the embedded parameters (the streaming issue's "20 clean yes" check, on validation clips); with
`--gap-noise RMS`, white noise in the gaps instead of digital silence.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from bundles import (
    SUBSET,
    dataset_argument,
    description,
    machine_description,
    non_negative_float,
    positive_int,
    resolve_models,
    run,
    shared_bundle,
)
from clean_keywords import clean_keyword_runs, found_line
from validation_scoring import SILENCE_LEVEL_BANDS, best_misses, event_peaks, silence_levels, validation_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--top", type=positive_int, default=8, help="confusions listed per model")
    parser.add_argument(
        "--stream-offset",
        type=int,
        default=0,
        help="build the validation stream with seed + this (0: the stream training chose the checkpoint "
        "on; another value: the same validation clips, other placements and noise, so the "
        "checkpoint choice's luck does not flatter the model)",
    )
    parser.add_argument("--minutes", type=float, help="stream length (default: the spec's validation stream)")
    parser.add_argument("--peaks", action="store_true", help="print words' peak scores on the stream")
    parser.add_argument(
        "--volume-gain",
        type=positive_int,
        help="scale the stream by this whole gain before the frontend, as the part does (wrapping past "
        "the int16 limits; 1: unscaled), instead of the .tflite's embedded volume_gain",
    )
    parser.add_argument(
        "--gap-noise",
        type=non_negative_float,
        default=0.0,
        help="the clean-keyword check's gaps hold white noise of this RMS (int16 units) instead of "
        "digital silence",
    )
    parser.add_argument(
        "--dataset",
        type=dataset_argument,
        help="the dataset whose validation split is scored (default: the subset bundle); e.g. the whole "
        "subset for models trained on a copy with some words held out, so those words are unseen",
    )
    args = parser.parse_args()
    if args.minutes is not None and not 0 < args.minutes <= 240:
        parser.error(f"--minutes {args.minutes:g}: expected above 0 and at most 240")  # 0 ran the default
    # Every folder checked before any work: a bad one stopped the run after the models before it.
    models = resolve_models(args.models, "MODEL_FOLDER", trained=True)
    for folder, model in zip(args.models, models, strict=True):
        if not 0 <= model.manifest["seed"] + args.stream_offset < 2**32:
            parser.error(
                f"--stream-offset {args.stream_offset}: {folder}'s seed plus it is out of 0 to 2**32 - 1"
            )
    print(machine_description(), flush=True)
    from microspeech.data import load_dataset
    from microspeech.data.streams import score_detections
    from microspeech.detection.classify import KeywordSpotter
    from microspeech.detection.keyword_model import load_keyword_model
    from microspeech.detection.stream_run import run_spotter
    from microspeech.evaluation.evaluate import score_tflite
    from microspeech.evaluation.metrics import (
        balanced_accuracy,
        class_accuracies,
        overall_accuracy,
        predicted_classes,
    )
    from microspeech.labels import SILENCE
    from microspeech.training.stream_selection import ValidationStream

    dataset = load_dataset(args.dataset or shared_bundle(SUBSET))
    for folder, model in zip(args.models, models, strict=True):
        spec = model.spec
        manifest = model.manifest
        seed = manifest["seed"]
        validation = validation_clips(dataset, spec, seed)
        scores = score_tflite(model.tflite_path, validation.features)
        predicted = predicted_classes(scores)
        recalls = class_accuracies(scores, validation.labels)
        accuracy = overall_accuracy(scores, validation.labels)
        balanced = balanced_accuracy(scores, validation.labels)
        print(f"\n## {folder} (seed {seed}, best epoch {manifest['best_epoch']} of {manifest['epochs_run']})")
        print(f"int8 validation clips: {100 * accuracy:.2f}% / balanced {100 * balanced:.2f}%")
        print(
            "recall per class: "
            + ", ".join(f"{n} {100 * r:.1f}%" for n, r in zip(spec.classes, recalls, strict=True))
        )
        errors = Counter()
        for clip, label, guess in zip(validation.clips, validation.labels, predicted, strict=True):
            if label != guess:
                word = clip.word if clip is not None else "(noise slice)"
                errors[f"{word} -> {spec.classes[guess]}"] += 1
        print("errors: " + ", ".join(f"{k} {v}" for k, v in errors.most_common(args.top)))
        calibration = manifest.get("detection_calibration", {})
        chosen = (calibration or {}).get("chosen")
        if chosen:
            firmware = chosen["firmware"]
            print(
                f"calibrated: threshold {chosen['detection_threshold']}, "
                f"window {chosen['average_window_duration_ms']}, "
                f"count {chosen['minimum_count']}: {100 * firmware['miss_rate']:.1f}% missed at "
                f"{firmware['fa_per_hour']:.1f} FA/h on the validation stream"
            )
        if args.minutes is not None:
            spec = dataclasses.replace(
                spec, train=dataclasses.replace(spec.train, stream_validation_minutes=args.minutes)
            )
        stream = ValidationStream.build(dataset, spec, seed=seed + args.stream_offset).stream
        keyword_model = load_keyword_model(model.tflite_path)
        if args.volume_gain is not None:
            detection = dataclasses.replace(keyword_model.detection, volume_gain=args.volume_gain)
            keyword_model = dataclasses.replace(keyword_model, detection=detection)
            print(f"volume gain {args.volume_gain:g} instead of the embedded one")
        spotter = KeywordSpotter(keyword_model, keyword_model.detection, reset_after_detection=False)
        run, _ = run_spotter(spotter, stream, "scoring the validation stream", False, record=True)
        best = best_misses(stream, run, keyword_model, (2, 6, 20))
        misses = " / ".join(f"{100 * v:.1f}%" for v in best.values())
        which = "the training's" if not args.stream_offset else f"seed offset {args.stream_offset}"
        minutes = f"{stream.seconds / 60:.0f} min"
        print(f"validation stream ({which}, {minutes}), best miss at <= 2 / 6 / 20 FA/h: {misses}")
        # As the device runs it: the embedded parameters, the frontend reset after each detection.
        device, _ = run_spotter(KeywordSpotter(keyword_model), stream, "embedded", False, reference=run)
        embedded = score_detections(stream.events, device.detections, stream.seconds, tolerance_ms=1500)
        print(
            f"there at the embedded parameters: {100 * embedded.miss_rate:.1f}% missed at "
            f"{embedded.fa_per_hour:.1f} FA/h"
        )
        # The streaming issue's clean-keyword check on validation clips: every clip of each keyword.
        clean = clean_keyword_runs(keyword_model, dataset, "validation", args.gap_noise)
        gaps = f"white noise of RMS {args.gap_noise:g}" if args.gap_noise else "silence"
        print(f"clean keywords one by one, 2 s of {gaps} apart, embedded parameters: {found_line(clean)}")
        if SILENCE in spec.classes and dataset.noise_paths:
            levels = silence_levels(dataset, keyword_model, seed=seed)
            bands = ", ".join(
                f"RMS {low:g}-{high:g}: {100 * right:.1f}% ({100 * fired:.1f}% a keyword)"
                for (low, high), right, fired in zip(
                    SILENCE_LEVEL_BANDS, levels.silence, levels.keyword, strict=True
                )
            )
            print(f"noise slices called _silence_, by level: {bands}")
        if args.peaks:
            detection = keyword_model.detection
            peaks = event_peaks(stream, run, keyword_model.classes, detection.average_window_duration_ms)
            print_peaks(peaks, detection)


PERCENTILES = (10, 25, 50, 75, 90, 99)


def print_peaks(peaks, detection) -> None:
    """Peak percentiles per condition for keywords and other words, and the closest other words."""
    threshold = detection.detection_threshold
    groups = defaultdict(list)
    for peak in peaks:
        groups[(peak.is_keyword, peak.snr_db)].append(peak.peak)
    print(
        f"peak window average ({detection.average_window_duration_ms} ms) per word, percentiles "
        f"{' / '.join(map(str, PERCENTILES))}, and the share >= the threshold {threshold}:"
    )
    for (is_keyword, snr_db), values in sorted(groups.items()):
        condition = "clean" if snr_db == float("inf") else f"{snr_db:g} dB"
        quantiles = " / ".join(f"{q:.0f}" for q in np.percentile(values, PERCENTILES))
        share = np.mean(np.asarray(values) >= threshold)
        kind = "keywords" if is_keyword else "other words"
        print(f"  {kind:11} {condition:>6} ({len(values)}): {quantiles}; {100 * share:.0f}% >= {threshold}")
    others = sorted((p for p in peaks if not p.is_keyword), key=lambda p: -p.peak)
    closest = ", ".join(f"{p.word} ({p.snr_db:g} dB) {p.peak} as {p.peak_class}" for p in others[:10])
    print(f"closest other words: {closest}")
    near_level = round(0.75 * threshold)  # other words within reach of the threshold
    near = Counter(p.word for p in others if p.peak >= near_level)
    print(f"other words peaking >= {near_level}: " + ", ".join(f"{w} {n}" for w, n in near.most_common()))


if __name__ == "__main__":
    run(main)
