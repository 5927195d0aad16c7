"""Clean keywords one after another: clips of one word from one split, digital silence between them,
run as the device runs them (the embedded parameters, the frontend reset after each detection).

    .venv/bin/python benchmarks/clean_keywords.py MODEL [MODEL ...] [--split validation] [--gap-noise RMS]

The streaming issue's "20 clean yes" check, shared by `detection.py` (test split, 20 clips) and
`validation_diagnosis.py` (validation split, every clip of the word, so settings can be chosen on
it without the test clips). Run alone, it prints per model (a training output folder or a .tflite)
its embedded parameters and how many clips of each keyword it found, on the subset bundle's split.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bundles import (
    SUBSET,
    description,
    fail,
    machine_description,
    non_negative_float,
    resolve_models,
    run,
    shared_bundle,
)

# A detection counts for a clip from the clip's start until this long after its end (the firmware's
# latency and averaging window delay it), as the streaming benchmark's tolerance does.
DETECTION_TOLERANCE_MS = 1500


@dataclass(frozen=True)
class CleanKeywordRun:
    word: str
    clips: int
    found: int
    false_accepts: int
    missed: tuple[str, ...]  # file names of the clips with no detection of `word`


def clean_keyword_run(
    keyword_model: Any,
    dataset: Any,
    split: str,
    word: str,
    count: int | None = None,
    gap_s: float = 2.0,
    gap_noise_rms: float = 0.0,
) -> CleanKeywordRun:
    """`count` clips of `word` from `split` (every one when None), in an order drawn with seed 0
    from their sorted paths, `gap_s` of silence before and after each; `keyword_model` is a
    .tflite path or a loaded `KeywordModel` (whose detection parameters are used).

    `gap_noise_rms` > 0 fills the gaps with white noise of that RMS (int16 units, seed 0) instead
    of digital zeros: a microphone never outputs zeros, and each clip's own room noise then no
    longer starts as a step from silence.
    """
    from microspeech.audio import SAMPLE_RATE
    from microspeech.data.streams import StreamEvent, score_detections
    from microspeech.detection.classify import KeywordSpotter
    from microspeech.detection.stream_run import run_stream

    clips = sorted((c for c in dataset.split(split) if c.word == word), key=lambda c: str(c.path))
    if not clips:
        fail(f"the {split} split of {dataset.root} has no clips of {word!r}")
    order = np.random.default_rng(0).permutation(len(clips))
    picked = [clips[i] for i in order[: count if count is not None else len(clips)]]
    gap_noise = np.random.default_rng(0)
    length = int(gap_s * SAMPLE_RATE)

    def gap() -> np.ndarray:
        if not gap_noise_rms:
            return np.zeros(length, np.int16)
        return np.clip(np.round(gap_noise.normal(0.0, gap_noise_rms, length)), -32768, 32767).astype(np.int16)

    audio, events = [gap()], []
    position = length
    for clip in picked:
        samples = dataset.read(clip)
        events.append(StreamEvent(position, len(samples), word, word, True, float("inf"), str(clip.path)))
        audio += [samples, gap()]
        position += len(samples) + length
    run = run_stream(KeywordSpotter(keyword_model, reset_after_detection=True), np.concatenate(audio))
    seconds = position / SAMPLE_RATE
    score = score_detections(events, run.detections, seconds, tolerance_ms=DETECTION_TOLERANCE_MS)
    # A second detection of one clip counts as a false accept here: the device would act twice.
    false_accepts = score.false_accepts + score.repeats
    missed = tuple(clip.path.name for clip, at in zip(picked, score.found_ms, strict=True) if at is None)
    found = len(picked) - len(missed)
    return CleanKeywordRun(word, len(picked), found, false_accepts, missed)


def clean_keyword_runs(
    keyword_model: Any, dataset: Any, split: str, gap_noise_rms: float = 0.0
) -> list[CleanKeywordRun]:
    """`clean_keyword_run` for every keyword class of a loaded `KeywordModel`, every clip of each."""
    return [
        clean_keyword_run(keyword_model, dataset, split, word, gap_noise_rms=gap_noise_rms)
        for word in keyword_model.classes
        if not word.startswith("_")
    ]


def found_line(runs: list[CleanKeywordRun]) -> str:
    """ "yes 80/107, no 32/95, 0 false accepts"."""
    found = ", ".join(f"{run.word} {run.found}/{run.clips}" for run in runs)
    return f"{found}, {sum(run.false_accepts for run in runs)} false accepts"


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("models", nargs="+", type=Path, help="training output folders or .tflite files")
    parser.add_argument(
        "--split",
        choices=("train", "validation", "test"),
        default="validation",
        help="the subset bundle's split (default: validation)",
    )
    parser.add_argument(
        "--gap-noise",
        type=non_negative_float,
        default=0.0,
        help="white noise of this RMS (int16 units) in the gaps",
    )
    args = parser.parse_args()
    # Every model checked before the bundle is read: a bad one stopped after the models before it.
    tflites = [model.require_tflite().path for model in resolve_models(args.models, "MODEL")]
    print(machine_description(), flush=True)
    from microspeech.data import load_dataset
    from microspeech.detection.keyword_model import load_keyword_model

    dataset = load_dataset(shared_bundle(SUBSET))
    models = [load_keyword_model(tflite) for tflite in tflites]
    words = {clip.word for clip in dataset.split(args.split)}
    for path, model in zip(args.models, models, strict=True):  # before the first model's run
        if missing := [word for word in model.classes if not word.startswith("_") and word not in words]:
            fail(f"{path}: the {args.split} split of {dataset.root} has no clips of {', '.join(missing)}")
    gaps = f"white noise of RMS {args.gap_noise:g}" if args.gap_noise else "digital silence"
    print(f"every {args.split} clip of each keyword, 2 s of {gaps} apart, embedded parameters")
    for path, model in zip(args.models, models, strict=True):
        runs = clean_keyword_runs(model, dataset, args.split, args.gap_noise)
        detection = model.detection
        print(
            f"{path}: threshold {detection.detection_threshold}, window "
            f"{detection.average_window_duration_ms} ms, count {detection.minimum_count}: {found_line(runs)}",
            flush=True,
        )


if __name__ == "__main__":
    run(main)
