"""Frontend throughput next to MLTK's compiled AudioFeatureGenerator, same real clips, one run.

Computes int8 features of every clip of the dev test bundle with MLTK's C++ frontend (the
oracle: one clip per call, on one core, and on all cores with one process per core as
MLTK's parallel data generator runs it) and with ours (compute_features on one thread, then
on all cores). Checks every cell of both dtypes for equality and prints clips/s, ratios and
a Markdown row for BENCHMARKS.md.

Timings are the best of --repeats runs. Wall-clock time is what users get; on a shared
machine it is disturbed by other processes, so single-thread runs are also timed in CPU
time (time.process_time), which other processes do not inflate.

    .venv/bin/python benchmarks/frontend.py [--dataset DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numba
import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from bundles import (
    DEV_TEST_SET,
    description,
    existing_folder,
    fail,
    machine_description,
    positive_int,
    run,
    shared_bundle,
)
from microspeech.audio import fit_length, read_audio
from microspeech.frontend import FrontendSettings, compute_features
from microspeech.testing.mltk_oracle import INSTALL_HINT, MltkFrontend, find_wrapper

console = Console()
_worker_clips: np.ndarray | None = None  # set before forking the oracle's worker processes


def load_clips(root: Path, n_samples: int) -> np.ndarray:
    files = sorted(root.rglob("*.wav"))
    if not files:
        fail(f"no .wav files under {root}")
    return np.stack([fit_length(read_audio(path), n_samples) for path in track(files, "reading clips")])


def best_of(run: Callable[[], np.ndarray], repeats: int) -> tuple[float, float, np.ndarray]:
    """(best wall seconds, best CPU seconds of this process, result) over `repeats` runs."""
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def _oracle_chunk(bounds: tuple[int, int]) -> np.ndarray:
    assert _worker_clips is not None
    return MltkFrontend().compute(_worker_clips[bounds[0] : bounds[1]], "int8")


def oracle_all_cores(pool: multiprocessing.pool.Pool, n_clips: int, cores: int) -> np.ndarray:
    edges = np.linspace(0, n_clips, 4 * cores + 1).astype(int)
    return np.concatenate(pool.map(_oracle_chunk, list(zip(edges[:-1], edges[1:], strict=True))))


def main() -> None:
    global _worker_clips
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--dataset", type=existing_folder, help="folder of .wav clips (default: the dev test bundle)"
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="timed runs per contender (best is kept)"
    )
    args = parser.parse_args()
    print(machine_description(), flush=True)
    if find_wrapper() is None:
        fail(f"MLTK's compiled frontend is not installed ({INSTALL_HINT})")

    settings = FrontendSettings()
    clips = load_clips(args.dataset or shared_bundle(DEV_TEST_SET, "pass --dataset"), settings.n_samples)
    n = len(clips)
    cores = numba.config.NUMBA_NUM_THREADS
    oracle = MltkFrontend(settings)
    compute_features(clips[:4])  # compile / load the numba cache outside the timings

    console.print(f"timing {n} clips, best of {args.repeats} ...")
    oracle_wall, oracle_cpu, reference = best_of(lambda: oracle.compute(clips, "int8"), args.repeats)
    _worker_clips = clips
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        oracle_all_wall, _, reference_all = best_of(lambda: oracle_all_cores(pool, n, cores), args.repeats)
    numba.set_num_threads(1)
    one_wall, one_cpu, ours_one = best_of(lambda: compute_features(clips), args.repeats)
    numba.set_num_threads(cores)
    all_wall, all_cpu, ours_all = best_of(lambda: compute_features(clips), args.repeats)

    exact_int8 = int(np.sum(np.all(ours_all == reference, axis=(1, 2))))
    consistent = np.array_equal(ours_one, ours_all) and np.array_equal(reference_all, reference)
    ours_u16 = compute_features(clips, dtype="uint16")
    exact_u16 = int(np.sum(np.all(ours_u16 == oracle.compute(clips, "uint16"), axis=(1, 2))))

    table = Table(title=f"{n} real clips -> int8 features (best of {args.repeats})")
    for column in (
        "frontend",
        "cores",
        "clips/s (wall)",
        "ms/clip (wall)",
        "vs MLTK 1 core",
        "ms/clip (CPU)",
    ):
        table.add_column(column, justify="right")
    rows = (
        ("MLTK C++ (oracle)", 1, oracle_wall, f"{1000 * oracle_cpu / n:.4f}"),
        ("MLTK C++ (oracle)", cores, oracle_all_wall, "-"),
        ("microspeech", 1, one_wall, f"{1000 * one_cpu / n:.4f}"),
        ("microspeech", cores, all_wall, f"{1000 * all_cpu / n:.4f} (all threads)"),
    )
    for name, used, seconds, cpu in rows:
        table.add_row(
            name,
            str(used),
            f"{n / seconds:,.0f}",
            f"{1000 * seconds / n:.4f}",
            f"{oracle_wall / seconds:.2f}x",
            cpu,
        )
    console.print(table)
    console.print(
        f"single core, CPU time: microspeech {oracle_cpu / one_cpu:.2f}x MLTK; "
        f"scaling to {cores} cores: microspeech {one_wall / all_wall:.2f}x, "
        f"MLTK {oracle_wall / oracle_all_wall:.2f}x"
    )
    console.print(
        f"parallel overhead: {cores} threads use {all_cpu / one_cpu:.2f}x the CPU time of one; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    console.print(
        f"bit-exact vs MLTK: int8 {exact_int8}/{n} clips, uint16 {exact_u16}/{n} clips; "
        f"all runs agree: {consistent}"
    )
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    console.print(
        f"| {datetime.now(UTC):%Y-%m-%d} | {machine} | {n} "
        f"| {n / oracle_wall:,.0f} / {n / oracle_all_wall:,.0f} "
        f"| {n / one_wall:,.0f} ({oracle_wall / one_wall:.2f}x; CPU {oracle_cpu / one_cpu:.2f}x) "
        f"| {n / all_wall:,.0f} ({oracle_wall / all_wall:.2f}x; {one_wall / all_wall:.2f}x scaling) "
        f"| {exact_int8}/{n} int8, {exact_u16}/{n} uint16 |",
        soft_wrap=True,
    )


if __name__ == "__main__":
    run(main)
