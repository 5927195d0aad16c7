"""Dataset throughput: indexing and decoding the real subset bundle, and synthetic generation.

Side by side in one run, on the same files:
- indexing: our `load_dataset(PATH)` (lists + header probe of every file, so bad files are
  skipped up front) next to TensorFlow's speech_commands recipe (glob + sha1 `which_set`
  per file, no file is opened);
- decoding: our `dataset.read` (soundfile, 16 kHz mono int16) next to TensorFlow's
  `tf.audio.decode_wav(tf.io.read_file(path))`, the reference pipeline's reader;
- synthetic: generating the default `synthetic` dataset from scratch (eSpeak NG, all cores)
  into a temporary MICROSPEECH_HOME; the goal is >= 25 clips/s on 2 cores.

    .venv/bin/python benchmarks/datasets.py [--dataset DIR] [--repeats 3] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bundles import (
    SUBSET,
    description,
    existing_folder,
    machine_description,
    positive_int,
    run,
    shared_bundle,
)
from microspeech.data import load_dataset

console = Console()


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs (the machine is shared: the minimum is the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def tensorflow_index(root: Path) -> list[tuple[str, str]]:
    """TensorFlow speech_commands `prepare_data_index`: glob word folders, sha1 rule per file."""
    validation, testing = 10.0, 10.0
    index = []
    for path in glob.glob(os.path.join(str(root), "*", "*.wav")):
        word = os.path.basename(os.path.dirname(path))
        if word == "_background_noise_":
            continue
        hash_name = re.sub(r"_nohash_.*$", "", os.path.basename(path))
        percentage = (int(hashlib.sha1(hash_name.encode()).hexdigest(), 16) % (2**27)) * (100.0 / (2**27 - 1))
        split = "train"
        if percentage < validation + testing:
            split = "validation" if percentage < validation else "test"
        index.append((path, split))
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--dataset", type=existing_folder, help="a Speech Commands folder (default: the subset bundle)"
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="timed runs per contender (best is kept)"
    )
    parser.add_argument("--skip-synthetic", action="store_true", help="do not time synthetic generation")
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="synthetic worker processes (default: all)"
    )
    args = parser.parse_args()
    if args.skip_synthetic and args.workers:
        parser.error("--workers: only for synthetic generation, which --skip-synthetic leaves out")
    print(machine_description(), flush=True)
    root = args.dataset or shared_bundle(SUBSET, "pass --dataset")

    dataset = load_dataset(root)
    paths = [clip.path for clip in dataset.clips]
    n = len(paths)
    ours_index = best_time(lambda: load_dataset(root), args.repeats)
    tf_index = best_time(lambda: tensorflow_index(root), args.repeats)
    ours_decode = best_time(lambda: [dataset.read(clip) for clip in dataset.clips], args.repeats)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.audio.decode_wav(tf.io.read_file(str(paths[0])))  # warm up outside the timing
    tf_decode = best_time(lambda: [tf.audio.decode_wav(tf.io.read_file(str(p))) for p in paths], args.repeats)

    table = Table(title=f"{n} clips of {root.name}, best of {args.repeats}")
    for column in ("step", "microspeech clips/s", "TensorFlow recipe clips/s", "ratio"):
        table.add_column(column, justify="right")
    table.add_row("index (ours probes every header)", f"{n / ours_index:,.0f}", f"{n / tf_index:,.0f}",
                  f"{tf_index / ours_index:.2f}x")  # fmt: skip
    table.add_row("decode to int16", f"{n / ours_decode:,.0f}", f"{n / tf_decode:,.0f}",
                  f"{tf_decode / ours_decode:.2f}x")  # fmt: skip
    both = ours_index + ours_decode
    table.add_row("index + decode", f"{n / both:,.0f}", f"{n / (tf_index + tf_decode):,.0f}",
                  f"{(tf_index + tf_decode) / both:.2f}x")  # fmt: skip
    console.print(table)
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    row = (
        f"| {datetime.now(UTC):%Y-%m-%d} | {machine} | {n} | index {n / ours_index:,.0f} "
        f"(TF {n / tf_index:,.0f}) | decode {n / ours_decode:,.0f} (TF {n / tf_decode:,.0f}, "
        f"{tf_decode / ours_decode:.2f}x) | index+decode {n / both:,.0f} |"
    )

    if not args.skip_synthetic:
        from microspeech.data.synthetic import SyntheticConfig, generate_synthetic
        from microspeech.data.synthetic.generate import default_workers

        workers = args.workers or default_workers()
        with tempfile.TemporaryDirectory() as home:
            os.environ["MICROSPEECH_HOME"] = home  # a cold cache: everything is generated
            generation = generate_synthetic(SyntheticConfig(), workers=workers)
        console.print(
            f"synthetic (default size): {generation.clips_rendered:,} clips in {generation.seconds:.1f} s = "
            f"[bold]{generation.clips_per_second:.0f} clips/s[/] on {workers} worker(s) (goal >= 25)"
        )
        row += f" synthetic {generation.clips_per_second:.0f} clips/s ({workers} workers) |"
    console.print(row, soft_wrap=True)


if __name__ == "__main__":
    run(main)
