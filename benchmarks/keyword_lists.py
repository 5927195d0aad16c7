"""Every registered model on a longer keyword list, several seeds: clip accuracy and a stream.

Speech Commands' 12-class task (ten commands, `_unknown_`, `_silence_`) needs clips of "on" and
"off", which the subset bundle barely has (the script prints its training clips per word), so the
default list is the eight commands it has hundreds of: 10 classes. For each model and seed it runs,
as a user would, `microspeech train MODEL --keywords LIST --dataset <subset> --seed N` (a finished
folder under --output is reused), `microspeech evaluate` on the dev test bundle (words not in the
list, "on" and "off" included, count as `_unknown_`), and `microspeech evaluate --streaming` (the
dev bundle's clips at one SNR: the miss rate at the parameters `train` calibrated into the
.tflite, and the best at <= 5 false accepts per hour). Prints the machine, one row per run and
the mean (range) per model, with train wall time, MACs and the measured TFLM arena.

    .venv/bin/python benchmarks/keyword_lists.py --output /tmp/k8 [--seeds 0 1 2] [--models ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from bundles import (
    DEV_TEST_SET,
    SUBSET,
    check_output,
    description,
    fail,
    machine_description,
    seed_number,
    shared_bundle,
    stream_minutes,
)
from bundles import run as run_benchmark

EIGHT_COMMANDS = "yes,no,up,down,left,right,stop,go"
MICROSPEECH = [
    sys.executable,
    "-c",
    "import sys; from microspeech.cli import main; sys.argv[0] = 'microspeech'; main()",
]


def run(*args: str, log: Path) -> None:
    """One microspeech command, its output kept in `log`; a failure stops with the log's tail."""
    with log.open("w") as out:
        code = subprocess.call([*MICROSPEECH, *args], stdout=out, stderr=subprocess.STDOUT)
    if code:
        sys.exit(
            f"error: microspeech {' '.join(args)} failed ({code}); see {log}:\n{log.read_text()[-2000:]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--output", type=Path, required=True, help="trained models and reports (reused)")
    parser.add_argument("--keywords", default=EIGHT_COMMANDS)
    parser.add_argument("--models", nargs="+", default=["tflite_micro_speech", "two_conv", "ds_cnn"])
    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stream-minutes", type=stream_minutes, default=60.0)
    parser.add_argument("--snr-db", type=float, default=10.0)
    args = parser.parse_args()
    # Before any training: a bad model name, keyword list or SNR failed in the training (or the
    # evaluation) of that model, after every model before it had trained.
    from microspeech.checks import parse_snr_list
    from microspeech.models import resolve_model_spec, with_keywords

    for model in args.models:
        try:
            spec = resolve_model_spec(model)
        except (KeyError, ValueError) as error:
            fail(f"--models {model}: {error.args[0]}")
        try:
            with_keywords(spec, args.keywords)
        except ValueError as error:
            fail(f"--keywords: {error}")
    parse_snr_list(str(args.snr_db), "--snr-db")
    check_output(args.output, "--output", "*_s[0-9]*")
    print(machine_description(), flush=True)

    from microspeech.data import load_dataset
    from microspeech.evaluation.streaming import ThresholdPoint, best_within_budget
    from microspeech.tflite.profile import find_min_arena_size
    from microspeech.tflite.summary import summarize_tflite

    subset, test = shared_bundle(SUBSET), shared_bundle(DEV_TEST_SET)
    clips = Counter(clip.word for clip in load_dataset(str(subset)).split("train"))
    words = [word.strip() for word in args.keywords.split(",")]
    print(f"training clips per keyword in {subset.name}: " + ", ".join(f"{w} {clips[w]}" for w in words))
    if missing := [word for word in words if not clips[word]]:
        fail(f"--keywords: {subset.name} has no training clips of {', '.join(missing)}")
    print("12-class words the list leaves out: " + ", ".join(f"{w} {clips[w]}" for w in ("on", "off")))
    args.output.mkdir(parents=True, exist_ok=True)

    rows: dict[str, list[dict]] = {}
    for model in args.models:
        for seed in args.seeds:
            folder = args.output / f"{model}_s{seed}"
            if not (folder / "manifest.json").is_file():
                shutil.rmtree(folder, ignore_errors=True)
                run(
                    "train",
                    model,
                    "--keywords",
                    args.keywords,
                    "--dataset",
                    str(subset),
                    "--seed",
                    str(seed),
                    "--output",
                    str(folder),
                    "--quiet",
                    log=args.output / f"{model}_s{seed}-train.log",
                )
            manifest = json.loads((folder / "manifest.json").read_text())
            tflite = folder / manifest["files"]["tflite"]
            clip_dir, stream_dir = (
                args.output / f"{model}_s{seed}-eval",
                args.output / f"{model}_s{seed}-stream",
            )
            if not (clip_dir / "eval-results.json").is_file():
                run(
                    "evaluate",
                    str(folder),
                    "--tflite",
                    "--dataset",
                    str(test),
                    "--output",
                    str(clip_dir),
                    "--no-plots",
                    log=args.output / f"{model}_s{seed}-eval.log",
                )
            if not (stream_dir / "streaming.json").is_file():
                run(
                    "evaluate",
                    str(folder),
                    "--streaming",
                    "--dataset",
                    str(test),
                    "--minutes",
                    str(args.stream_minutes),
                    "--snr-db",
                    str(args.snr_db),
                    "--output",
                    str(stream_dir),
                    "--no-plots",
                    log=args.output / f"{model}_s{seed}-stream.log",
                )
            int8 = json.loads((clip_dir / "eval-results.json").read_text())["results"]["int8"]
            stream = json.loads((stream_dir / "streaming.json").read_text())
            firmware = stream["operating_point"]["firmware"]
            best = best_within_budget([ThresholdPoint.from_dict(p) for p in stream["curve"]], 5.0)
            summary = summarize_tflite(tflite)
            rows.setdefault(model, []).append(
                {
                    "seed": seed,
                    "accuracy": 100 * int8["overall_accuracy"],
                    "balanced": 100 * int8["balanced_accuracy"],
                    "embedded_miss": 100 * firmware["miss_rate"],
                    "embedded_fa": firmware["fa_per_hour"],
                    "miss_at_5": 100 * (best.score.miss_rate if best else 1.0),
                    "wall_s": manifest["wall_seconds"],
                    "epochs": manifest["epochs_run"],
                    "macs": summary.total_macs,
                    "arena": find_min_arena_size(tflite),
                    "classes": len(int8["classes"]),
                }
            )

    print(
        f"\nkeywords: {args.keywords}; clip accuracy: int8 (LiteRT) on every clip of {test.name}; "
        f"stream: {args.stream_minutes:g} min of its clips at {args.snr_db:g} dB, `evaluate --streaming`\n"
    )
    table(
        [
            "model",
            "seed",
            "classes",
            "train wall (epochs)",
            "int8 acc. / balanced",
            "embedded: miss (FA/h)",
            "miss at <= 5 FA/h",
        ]
    )
    for model, runs in rows.items():
        for r in runs:
            table(
                [
                    model,
                    r["seed"],
                    r["classes"],
                    f"{r['wall_s']:.0f} s ({r['epochs']})",
                    f"{r['accuracy']:.2f}% / {r['balanced']:.2f}%",
                    f"{r['embedded_miss']:.1f}% ({r['embedded_fa']:.0f})",
                    f"{r['miss_at_5']:.1f}%",
                ],
                rule=False,
            )
    print()
    table(
        [
            "model",
            "MACs",
            "TFLM arena",
            "train wall",
            "int8 acc. (range) / balanced",
            "embedded: miss (FA/h)",
            "miss at <= 5 FA/h (range)",
        ]
    )
    for model, runs in rows.items():
        values = {key: [r[key] for r in runs] for key in runs[0]}
        table(
            [
                model,
                f"{runs[0]['macs']:,}",
                f"{runs[0]['arena']:,} B",
                f"{np.mean(values['wall_s']):.0f} s",
                f"{np.mean(values['accuracy']):.2f}% ({spread(values['accuracy'])}) / "
                f"{np.mean(values['balanced']):.2f}%",
                f"{np.mean(values['embedded_miss']):.1f}% ({np.mean(values['embedded_fa']):.1f})",
                f"{np.mean(values['miss_at_5']):.1f}% ({spread(values['miss_at_5'])})",
            ],
            rule=False,
        )


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def table(cells: list, rule: bool = True) -> None:
    """One Markdown row; a header row (`rule`) is followed by its separator."""
    print("| " + " | ".join(str(cell) for cell in cells) + " |")
    if rule:
        print("|" + "---|" * len(cells))


if __name__ == "__main__":
    run_benchmark(main)
