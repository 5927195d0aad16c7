"""Augmented feature pipeline: clips/s of our batch pipeline vs a per-clip reference, one run.

    .venv/bin/python benchmarks/pipeline.py [--dataset PATH] [--reference-clips 400]

Ours: `TrainingPipeline.epoch` of the full tflite_micro_speech recipe (balanced classes,
trim, random placement, background noise at [0, 0.3], int8 features), after the one-time
decode. Reference: what MLTK's ParallelAudioDataGenerator does per clip, in Python, with
the same frontend: read the file, trim at 20 dB, place at a random offset, mix a random
noise slice, compute that clip's features.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import soundfile as sf

from bundles import (
    SUBSET,
    dataset_argument,
    description,
    machine_description,
    positive_int,
    run,
    shared_bundle,
)
from microspeech.data import load_dataset
from microspeech.data.clip_bank import trim
from microspeech.data.pipeline import TrainingPipeline
from microspeech.frontend import compute_features
from microspeech.models import get_model_spec


def reference_rate(dataset, count: int, seed: int = 0) -> float:
    """Per-clip generator: disk read, trim, place, noise, features, one clip at a time."""
    spec = get_model_spec("tflite_micro_speech")
    rng = np.random.default_rng(seed)
    clips = [dataset.split("train")[i] for i in rng.permutation(len(dataset.split("train")))[:count]]
    noises = [sf.read(str(p), dtype="int16")[0].astype(np.float32) for p in sorted(dataset.noise_paths)]
    window = spec.frontend.n_samples
    started = time.perf_counter()
    for clip in clips:
        samples = trim(sf.read(str(clip.path), dtype="int16")[0], 20.0)[:window]
        placed = np.zeros(window, np.float32)
        offset = int(rng.integers(0, window - len(samples) + 1))
        placed[offset : offset + len(samples)] = samples
        noise = noises[int(rng.integers(0, len(noises)))]
        start = int(rng.integers(0, len(noise) - window))
        placed += rng.uniform(0.0, 0.3) * noise[start : start + window]
        audio = np.clip(np.round(placed), -32768, 32767).astype(np.int16)
        compute_features(audio, spec.frontend, dtype="int8")
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--dataset", type=dataset_argument, help="dataset folder or name (default: the subset bundle)"
    )
    parser.add_argument("--reference-clips", type=positive_int, default=400)
    parser.add_argument("--epochs", type=positive_int, default=3)
    args = parser.parse_args()
    print(machine_description(), flush=True)
    dataset = load_dataset(args.dataset or str(shared_bundle(SUBSET, "pass --dataset")))
    if args.reference_clips > len(dataset.split("train")):  # the rate was counted over clips never run
        parser.error(
            f"--reference-clips {args.reference_clips}: {dataset.root} has "
            f"{len(dataset.split('train'))} training clips"
        )
    started = time.perf_counter()
    pipeline = TrainingPipeline(dataset, get_model_spec("tflite_micro_speech").training_target(), seed=0)
    decode_seconds = time.perf_counter() - started
    pipeline.epoch(0)  # numba compilation / cache load
    best = 0.0
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        features, labels = pipeline.epoch(epoch)
        best = max(best, len(labels) / (time.perf_counter() - started))
    reference = reference_rate(dataset, args.reference_clips)
    print(f"cores: {len(os.sched_getaffinity(0))}, dataset: {dataset.root}")
    print(f"one-time decode + trim: {len(pipeline.bank)} clips in {decode_seconds:.1f} s")
    print(f"per-clip reference : {reference:10,.0f} clips/s ({args.reference_clips} clips)")
    print(f"microspeech epoch  : {best:10,.0f} clips/s ({len(labels)} clips/epoch, best of {args.epochs})")
    print(f"ratio              : {best / reference:10.2f}x")


if __name__ == "__main__":
    run(main)
