"""Frontend throughput next to MLTK's compiled AudioFeatureGenerator, same real clips, one run.

Computes int8 features of every clip of the dev test bundle with MLTK's C++ frontend (the
oracle, one clip at a time on one core, as MLTK's data generator calls it per worker) and
with ours (compute_features on one thread, then on all cores), checks every cell for
equality, and prints clips/s, ratios and a Markdown row for BENCHMARKS.md.

    .venv/bin/python benchmarks/frontend.py [--dataset DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numba
import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from microspeech.audio import fit_length, read_audio
from microspeech.data.archive import extract_archive
from microspeech.frontend import FrontendSettings, compute_features
from microspeech.frontend.mltk_oracle import INSTALL_HINT, MltkFrontend, find_wrapper

REPO = Path(__file__).resolve().parents[1]
TEST_BUNDLE = "speech_commands_test_set_v0.02_dev.tar.xz"
# Where the test suite unpacks the shared bundles (tests/conftest.py), so nothing is unpacked twice.
BUNDLE_CACHE = Path(os.environ.get("MICROSPEECH_TEST_CACHE", Path.home() / ".cache" / "microspeech" / "data"))
console = Console()


def dev_test_bundle() -> Path:
    for data_dir in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if (data_dir / TEST_BUNDLE).is_file():
            return extract_archive(data_dir / TEST_BUNDLE, BUNDLE_CACHE / TEST_BUNDLE.removesuffix(".tar.xz"))
    sys.exit(f"error: {TEST_BUNDLE} not found in ../shared/data; pass --dataset")


def load_clips(root: Path, n_samples: int) -> np.ndarray:
    files = sorted(root.rglob("*.wav"))
    if not files:
        sys.exit(f"error: no .wav files under {root}")
    return np.stack([fit_length(read_audio(path), n_samples) for path in track(files, "reading clips")])


def best_time(run: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    """Fastest of `repeats` runs (the machine is shared: the minimum is the least disturbed)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="folder of .wav clips (default: the dev test bundle)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per contender (best is kept)")
    args = parser.parse_args()
    if find_wrapper() is None:
        sys.exit(f"error: MLTK's compiled frontend is not installed ({INSTALL_HINT})")

    settings = FrontendSettings()
    clips = load_clips(args.dataset or dev_test_bundle(), settings.n_samples)
    oracle = MltkFrontend(settings)
    all_threads = numba.config.NUMBA_NUM_THREADS
    compute_features(clips[:4])  # compile / load the numba cache outside the timings

    oracle_s, reference = best_time(lambda: oracle.compute(clips, "int8"), args.repeats)
    numba.set_num_threads(1)
    one_s, ours_one = best_time(lambda: compute_features(clips), args.repeats)
    numba.set_num_threads(all_threads)
    all_s, ours_all = best_time(lambda: compute_features(clips), args.repeats)

    exact_int8 = int(np.sum(np.all(ours_all == reference, axis=(1, 2))))
    exact_one = bool(np.array_equal(ours_one, ours_all))
    exact_u16 = int(
        np.sum(
            np.all(compute_features(clips, dtype="uint16") == oracle.compute(clips, "uint16"), axis=(1, 2))
        )
    )
    n = len(clips)
    table = Table(title=f"{n} clips, int8 features, best of {args.repeats}")
    for column in ("frontend", "threads", "clips/s", "ms/clip", "vs MLTK 1 core"):
        table.add_column(column, justify="right")
    for name, threads, seconds in (
        ("MLTK C++ (oracle)", 1, oracle_s),
        ("microspeech", 1, one_s),
        ("microspeech", all_threads, all_s),
    ):
        table.add_row(
            name,
            str(threads),
            f"{n / seconds:,.0f}",
            f"{1000 * seconds / n:.3f}",
            f"{oracle_s / seconds:.2f}x",
        )
    console.print(table)
    console.print(
        f"bit-exact: int8 {exact_int8}/{n} clips, uint16 {exact_u16}/{n} clips; "
        f"1 thread == {all_threads} threads: {exact_one}; "
        f"scaling {one_s / all_s:.2f}x on {all_threads} threads"
    )
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    console.print(
        f"| {datetime.now(UTC):%Y-%m-%d} | {machine} | {n} | {n / oracle_s:,.0f} | {n / one_s:,.0f} "
        f"({oracle_s / one_s:.2f}x) | {n / all_s:,.0f} ({oracle_s / all_s:.2f}x, "
        f"{one_s / all_s:.2f}x scaling) "
        f"| {exact_int8}/{n} int8, {exact_u16}/{n} uint16 |",
        soft_wrap=True,
    )


if __name__ == "__main__":
    main()
