"""Training at the full Speech Commands v2 size: index, one-time decode/trim, epoch time, peak memory.

    .venv/bin/python benchmarks/full_scale.py [--dataset-dir DIR] [--epochs 2] [--seed 0]

The real 2.3 GB archive cannot be downloaded here, so the script first writes (once, cached in
`--dataset-dir`, default ~/.cache/microspeech/bench/speech_commands_full_size) a folder in the
dataset's own layout with v2's per-word counts (105,829 clips of 35 words): each clip is a
subset-bundle clip of the same word, perturbed (gain 0.5-1.5, shifted up to +-100 ms, +-2 LSB
dither) and named `<speaker>_nohash_<n>.wav` with made-up speakers, so TensorFlow's hash rule
splits it about 80/10/10 as the real one is split. The five words the subset has no clip of
(backward, follow, forward, learn, visual) reuse clips of the subset's rare words. Its
accuracy means nothing; its size, layout and lengths are the full dataset's.

Then, each in a fresh child process so its peak resident memory is its own:
1. `microspeech.data.load_dataset` (index: every file's header read);
2. `TrainingPipeline` (decode + trim every clip once) and `--epochs` augmented epochs;
3. `--epochs` `FastTrainer` epochs of the seed model on the last rendered features, each timed;
4. `microspeech train tflite_micro_speech --epochs N` end to end (validation set and stream,
   mining, conversion, calibration, parity), timed with its peak RSS, and each of its epochs as
   its history.csv records them: the epoch a user waits for, in which the next epoch renders
   while this one trains and the validation set and stream are scored. Its first epoch also
   renders the first features and builds the training graph.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bundles import (
    SUBSET,
    check_output,
    description,
    machine_description,
    positive_int,
    run,
    seed_number,
    shared_bundle,
)

# Speech Commands v0.02: clips per word (105,829 in all).
V2_COUNTS = {
    "yes": 4044, "no": 3941, "up": 3723, "down": 3917, "left": 3801, "right": 3778, "on": 3845,
    "off": 3745, "stop": 3872, "go": 3880, "zero": 4052, "one": 3890, "two": 3880, "three": 3727,
    "four": 3728, "five": 4052, "six": 3860, "seven": 3998, "eight": 3787, "nine": 3934,
    "bed": 2014, "bird": 2064, "cat": 2031, "dog": 2128, "happy": 2054, "house": 2113,
    "marvin": 2100, "sheila": 2022, "tree": 1759, "wow": 2123, "backward": 1664, "forward": 1557,
    "follow": 1579, "learn": 1575, "visual": 1592,
}  # fmt: skip
FULL_SIZE = 105_829
CLIPS_PER_SPEAKER = 5  # about the real dataset's mean
DEFAULT_DIR = Path.home() / ".cache" / "microspeech" / "bench" / "speech_commands_full_size"


def build_full_size(target: Path, seed: int) -> Path:
    """Write the full-size folder once (atomically: a partial build never looks complete)."""
    import numpy as np
    import soundfile as sf

    from microspeech.data import load_dataset
    from microspeech.files import atomic_directory
    from microspeech.progress import progress_bar

    assert sum(V2_COUNTS.values()) == FULL_SIZE
    subset = load_dataset(shared_bundle(SUBSET))
    by_word: dict[str, list] = {}
    for clip in subset.clips:
        if not clip.word.startswith("_"):
            by_word.setdefault(clip.word, []).append(clip)
    rare = [c for w in sorted(by_word) if len(by_word[w]) < 50 for c in by_word[w]]
    with atomic_directory(target) as building:
        if building is None:
            return target
        rng = np.random.default_rng(seed)
        noise_dir = building / "_background_noise_"
        noise_dir.mkdir()
        for path in subset.noise_paths:
            (noise_dir / path.name).write_bytes(path.read_bytes())
        with progress_bar(kind="count-eta") as bar:
            task = bar.add_task("writing the full-size dataset", total=FULL_SIZE)
            for word, count in V2_COUNTS.items():
                sources = by_word.get(word) or rare
                folder = building / word
                folder.mkdir()
                decoded = [subset.read(c) for c in sources]
                for i in range(count):
                    samples = decoded[i % len(decoded)].astype(np.float32)
                    shift = int(rng.integers(-1600, 1601))
                    samples = np.roll(np.pad(samples, (0, max(0, 16000 - len(samples)))), shift)[:16000]
                    samples = samples * rng.uniform(0.5, 1.5) + rng.integers(-2, 3, len(samples))
                    speaker = f"{rng.integers(0, 2**32):08x}"
                    name = f"{speaker}_nohash_{i % CLIPS_PER_SPEAKER}.wav"
                    sf.write(folder / name, np.clip(samples, -32768, 32767).astype(np.int16), 16000)
                    bar.advance(task)
    return target


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_index(folder: Path) -> dict:
    started = time.perf_counter()
    from microspeech.data import load_dataset

    dataset = load_dataset(folder)
    seconds = time.perf_counter() - started
    splits = {s: len(dataset.split(s)) for s in ("train", "validation", "test")}
    return {"clips": len(dataset.clips), "splits": splits, "index_s": seconds, "peak_rss_mb": peak_rss_mb()}


def stage_pipeline(folder: Path, epochs: int, seed: int, bank_cache: Path) -> dict:
    import numpy as np

    from microspeech.data import load_dataset
    from microspeech.models import get_model_spec

    dataset = load_dataset(folder)
    spec = get_model_spec("tflite_micro_speech")
    from microspeech.data.pipeline import TrainingPipeline

    started = time.perf_counter()
    pipeline = TrainingPipeline(dataset, spec.training_target(), seed=seed, bank_cache=bank_cache)
    result = {
        "bank_clips": len(pipeline.bank),
        "bank_mb": pipeline.bank.audio.nbytes / 2**20,
        "decode_trim_s": time.perf_counter() - started,
        "rss_after_decode_mb": peak_rss_mb(),
    }
    epoch_seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        features, labels = pipeline.epoch(epoch)
        epoch_seconds.append(time.perf_counter() - started)
    result.update(epoch_clips=len(labels), render_s=epoch_seconds, rss_after_render_mb=peak_rss_mb())
    from microspeech.training.callbacks import balanced_class_weights
    from microspeech.training.loop import FastTrainer
    from microspeech.training.trainer import configure_threads

    configure_threads()
    model = spec.build_model()
    trainer = FastTrainer(model, 1e-3, balanced_class_weights(labels, len(spec.classes)))
    rng = np.random.default_rng(seed)
    trainer.train_epoch(features[:3200], labels[:3200], 32, rng)  # trace once
    # Several full epochs, each timed: on some VMs the first ones after the render run at half
    # the speed of the later ones whatever they train on (BENCHMARKS.md, "Full-dataset scale").
    train_seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        trainer.train_epoch(features, labels, 32, rng)
        train_seconds.append(time.perf_counter() - started)
    result.update(train_epoch_s=train_seconds, rss_after_train_mb=peak_rss_mb())
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def run_child(*arguments: str) -> dict:
    command = [sys.executable, __file__, *arguments]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_train(folder: Path, epochs: int, seed: int, output: Path) -> dict:
    """`microspeech train` end to end under GNU time's peak-RSS count (children included)."""
    microspeech = str(Path(sys.executable).with_name("microspeech"))  # this environment's CLI
    command = [
        microspeech, "train", "tflite_micro_speech", "--dataset", str(folder),
        "--epochs", str(epochs), "--seed", str(seed), "--output", str(output), "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if process.returncode:
        sys.exit(f"microspeech train failed:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with open(output / "history.csv", newline="") as history:
        epoch_seconds = [float(row["seconds"]) for row in csv.DictReader(history)]
    return {
        "wall_s": seconds,
        "peak_rss_mb": children,
        "epoch_s": epoch_seconds,
        "log_tail": process.stdout.strip().splitlines()[-8:],
    }


def report_pipeline(label: str, stage: dict) -> None:
    print(
        f"{label}: {stage['bank_clips']:,} clips, {stage['bank_mb']:,.0f} MB of int16 in "
        f"{stage['decode_trim_s']:.1f} s, peak RSS {stage['rss_after_decode_mb']:,.0f} MB"
    )
    renders = ", ".join(f"{s:.1f}" for s in stage["render_s"])
    print(f"  augmented epochs: {stage['epoch_clips']:,} clips each, rendered in {renders} s")
    clips = stage["epoch_clips"]
    trains = ", ".join(f"{s:.1f} s ({clips / s:,.0f} samples/s)" for s in stage["train_epoch_s"])
    print(f"  training epochs (FastTrainer, batch 32), in order: {trains}")
    fastest = min(stage["render_s"]) + min(stage["train_epoch_s"])
    slowest = max(stage["render_s"]) + max(stage["train_epoch_s"])
    peak = stage["peak_rss_mb"]
    print(f"  epoch = render + train: {fastest:.1f} s (slowest {slowest:.1f} s); peak RSS {peak:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--dataset-dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--epochs", type=positive_int, default=2)
    parser.add_argument("--seed", type=seed_number, default=0)
    parser.add_argument("--output", type=Path, default=Path("/tmp/microspeech-full-scale"))
    parser.add_argument("--skip-train", action="store_true", help="no end-to-end `microspeech train`")
    parser.add_argument("--stage", choices=("index", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--bank-cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "index":
        print(json.dumps(stage_index(args.dataset_dir)))
        return
    if args.stage == "pipeline":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        print(json.dumps(stage_pipeline(args.dataset_dir, args.epochs, args.seed, args.bank_cache)))
        return
    # Before the dataset is written: a bad --output failed at the end; a folder of other files in
    # --dataset-dir would be replaced by the built one.
    check_output(args.output, "--output", "clip_banks", "model")
    from microspeech.files import COMPLETE_MARKER

    folder = args.dataset_dir
    if folder.exists() and not (folder / COMPLETE_MARKER).exists():
        if not folder.is_dir() or any(folder.iterdir()):
            parser.error(
                f"--dataset-dir {folder}: not a full-size dataset this script built (no {COMPLETE_MARKER}), "
                "and building one would replace it: give a new folder"
            )
    print(machine_description(), flush=True)
    started = time.perf_counter()
    existed = (args.dataset_dir / "yes").is_dir()
    build_full_size(args.dataset_dir, args.seed)
    how = "cached" if existed else "written"
    print(f"full-size dataset: {args.dataset_dir} ({how} in {time.perf_counter() - started:.1f} s)")
    index = run_child("--stage", "index", "--dataset-dir", str(args.dataset_dir))
    print(
        f"index: {index['clips']:,} clips {index['splits']} in {index['index_s']:.1f} s, "
        f"peak RSS {index['peak_rss_mb']:,.0f} MB"
    )
    bank_cache = args.output / "clip_banks"
    shutil.rmtree(bank_cache, ignore_errors=True)
    common = ["--dataset-dir", str(args.dataset_dir), "--epochs", str(args.epochs), "--seed", str(args.seed)]
    for label in ("decode + trim, first run (bank written)", "second run (bank memory-mapped)"):
        stage = run_child("--stage", "pipeline", *common, "--bank-cache", str(bank_cache))
        report_pipeline(label, stage)
    if not args.skip_train:
        result = run_train(args.dataset_dir, args.epochs, args.seed, args.output / "model")
        print(
            f"`microspeech train tflite_micro_speech --epochs {args.epochs}` end to end: "
            f"{result['wall_s']:.1f} s, peak RSS {result['peak_rss_mb']:,.0f} MB"
        )
        epochs = ", ".join(f"{s:.1f}" for s in result["epoch_s"])
        later = (
            f"; after the first: {max(result['epoch_s'][1:]):.1f} s at most"
            if len(result["epoch_s"]) > 1
            else ""
        )
        print(f"  its epochs (history.csv: render overlapped, validation scored): {epochs} s{later}")
        print("\n".join("  " + line for line in result["log_tail"]))


if __name__ == "__main__":
    run(main)
