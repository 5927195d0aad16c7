"""`microspeech train` wall time: today's code against an earlier commit's, same machine, one run.

    .venv/bin/python benchmarks/train_time.py [--baseline 382fc18] [--seeds 0 1 2] [--output DIR]

The streaming issue bounds training time at twice that of the clip recipe it started from
(commit 382fc18, the default baseline). The baseline's code is checked out into a git worktree
and run by this script's interpreter with `PYTHONPATH` pointing at it (same packages); today's
is the tree this script lives in. Per seed the two run one after the other (baseline first),
`microspeech train tflite_micro_speech --dataset <subset bundle> --seed S --quiet`, so both see
the same machine state; each time is process start to exit, numba caches warmed by a dry run
of each code first (not timed). Prints the machine, both commits, every time and the ratio of
the means.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bundles import (
    REPO,
    SUBSET,
    check_output,
    cpu_flags,
    description,
    existing_folder,
    fail,
    machine_description,
    run,
    seed_number,
    shared_bundle,
)
from mltk_training import manifest_summary, timed

MODEL = "tflite_micro_speech"
LAUNCH = "import sys; from microspeech.cli import main; sys.argv[0] = 'microspeech'; sys.exit(main())"


def short_commit(ref: str) -> str:
    found = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", ref], capture_output=True, text=True
    )
    if found.returncode != 0:
        fail(f"--baseline {ref!r} is not a commit of {REPO}: {found.stderr.strip()}")
    return found.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--baseline", default="382fc18", help="the commit to compare with (default 382fc18)")
    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", type=Path, help="logs, models, results.json (default: a new temp folder)")
    parser.add_argument(
        "--dataset", type=existing_folder, help="a Speech Commands folder (default: the subset bundle)"
    )
    args = parser.parse_args()
    # Before the baseline's worktree is made: a file as --output failed there, a bad dataset in the
    # first training.
    check_output(args.output, "--output", "baseline-*", "today-*", "results.json")

    baseline = short_commit(args.baseline)
    today = short_commit("HEAD")
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True
    )
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine_description()}")
    print(f"today: {REPO} at {today}{' with uncommitted changes in src/' if dirty.stdout.strip() else ''}")
    dataset = (args.dataset or shared_bundle(SUBSET, "pass --dataset")).resolve()
    output = (args.output or Path(tempfile.mkdtemp(prefix="train-time-"))).resolve()
    output.mkdir(parents=True, exist_ok=True)
    worktree = output / f"baseline-{baseline}"
    if not worktree.is_dir():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(worktree), baseline], check=True
        )
    print(f"baseline: {baseline} in {worktree}; dataset {dataset}; output {output}")

    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    baseline_env = {**env, "PYTHONPATH": str(worktree / "src")}
    if "amx_tile" in cpu_flags():
        # Code of that time still loaded Silicon Labs' TFLM into the TensorFlow process, which dies
        # on AMX CPUs ("sigaltstack: Cannot allocate memory"; see mltk_training.py). Both runs get
        # the same cap so they stay comparable; float32 training never uses AMX.
        for variables in (baseline_env, env):
            variables["ONEDNN_MAX_CPU_ISA"] = "AVX512_CORE_VNNI"
        print("both run with ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI (AMX CPU)")
    env["PYTHONPATH"] = str(REPO / "src")
    codes = {"baseline": (worktree, baseline_env), "today": (REPO, env)}

    def command(folder: Path, seed: int, dry_run: bool = False) -> list[str]:
        return [
            sys.executable, "-c", LAUNCH, "train", MODEL + ("-test" if dry_run else ""),
            "--dataset", str(dataset), "--seed", str(seed), "--output", str(folder), "--quiet",
        ]  # fmt: skip

    results: dict[str, list[dict]] = {name: [] for name in codes}
    try:
        for name, (cwd, variables) in codes.items():  # warm numba's caches, not timed
            log = output / f"{name}-dry.log"
            timed(f"{name} dry run (warm-up)", command(output / f"{name}-dry", 0, True), cwd, variables, log)
        for seed in args.seeds:
            for name, (cwd, variables) in codes.items():
                folder, log = output / f"{name}-seed{seed}", output / f"{name}-seed{seed}.log"
                label = f"{name} seed {seed}"
                seconds, cpu_seconds, _ = timed(label, command(folder, seed), cwd, variables, log)
                results[name].append(
                    {"seed": seed, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                     "run": manifest_summary(folder)}  # fmt: skip
                )
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=False)

    print(f"\nsame machine, same run; dataset {dataset.name}; seeds {args.seeds}")
    means = {}
    for name, rows in results.items():
        means[name] = sum(row["seconds"] for row in rows) / len(rows)
        times = " / ".join(f"{row['seconds']:.1f}" for row in rows)
        commit = baseline if name == "baseline" else today
        print(f"{name:9s} ({commit}): {times} s, mean {means[name]:.1f} s")
        for row in rows:
            print(f"{'':11s}seed {row['seed']}: {row['run']}, {row['cpu_seconds']:.0f} s CPU")
    ratio = means["today"] / means["baseline"]
    print(f"ratio today / baseline: {ratio:.2f}x")
    summary = {"baseline": baseline, "today": today, "results": results, "ratio": round(ratio, 3)}
    (output / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"results: {output / 'results.json'}")


if __name__ == "__main__":
    run(main)
