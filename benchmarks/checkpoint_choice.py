"""Which epoch to keep: checkpoint rules compared on every epoch's weights, on validation data only.

    .venv/bin/python benchmarks/checkpoint_choice.py --model tflite_micro_speech \\
        --seeds 0 1 2 3 4 5 6 7 --output /tmp/checkpoint_choice

Each seed is trained once by `microspeech.training.train_model`, the registered recipe unchanged,
while a wrapper around the trainer's per-epoch metrics keeps every epoch's weights as they are
scored and chosen (averaged where the spec averages). A rule only picks which epoch's weights are
kept, never the training path, so one run per seed serves every rule. Each rule's epoch is then
converted to int8 as `train` converts and scored on validation data: the validation clips (int8,
LiteRT) and the best miss rate within 2 / 6 / 20 false accepts per hour (threshold, window and
minimum count swept) on a 120-minute validation stream of another placement and noise than the
checkpoint stream (seed offset 1000, as `validation_diagnosis.py --stream-offset 1000`). No test
clip is read. The clip figures of rules that look at validation accuracy are measured on the
clips they chose with, so they flatter those rules; the stream figures are independent.
Trained folders in --output are reused (delete one to retrain it).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

import numpy as np

from bundles import SUBSET, check_output, description, machine_description, run, shared_bundle
from validation_scoring import best_misses, validation_clips

BUDGETS = (2, 6, 20)


def rule_epochs(rows: list[dict[str, str]]) -> dict[str, int]:
    """Epoch (1-based) each rule keeps, from history.csv's rows."""
    stream = np.array([float(r["val_stream_score"]) for r in rows])
    clips = np.array([float(r["val_accuracy"]) for r in rows])
    balanced = np.array([float(r["val_balanced_accuracy"]) for r in rows])
    chosen = {
        "stream score (before)": np.argmax(stream),
        "stream + accuracy (now)": np.argmax(stream + clips),
        "stream + balanced accuracy": np.argmax(stream + balanced),
        "accuracy": np.argmax(clips),
        "last epoch": len(rows) - 1,
    }
    return {rule: int(index) + 1 for rule, index in chosen.items()}


def train_keeping_epochs(model: str, dataset: Path, seed: int, folder: Path) -> None:
    """`train_model` as `microspeech train` runs it, every epoch's weights saved in folder/epochs."""
    from microspeech.training import train_model
    from microspeech.training import trainer as trainer_module

    epochs_dir = folder / "epochs"
    epochs_dir.mkdir(parents=True, exist_ok=True)
    original = trainer_module._epoch_metrics
    count = [0]

    def recording(trainer, result, validation, stream):  # noqa: ANN001, ANN202
        metrics = original(trainer, result, validation, stream)
        count[0] += 1
        np.savez(epochs_dir / f"epoch_{count[0]:03d}.npz", *trainer.model_weights())
        return metrics

    trainer_module._epoch_metrics = recording
    try:
        train_model(model, dataset=str(dataset), seed=seed, output=folder, progress=False)
    finally:
        trainer_module._epoch_metrics = original


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--model", default="tflite_micro_speech")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", type=Path, required=True, help="trained folders, kept and reused")
    parser.add_argument("--minutes", type=float, default=120.0, help="length of the scoring stream")
    parser.add_argument("--stream-offset", type=int, default=1000)
    args = parser.parse_args()
    print(machine_description(), flush=True)
    from microspeech.checks import check_minutes, check_seed
    from microspeech.models import get_model_spec

    try:  # before any training: an unknown model was a traceback after its folder was made
        get_model_spec(args.model)
    except KeyError as error:
        raise ValueError(f"--model {args.model}: {error.args[0]}") from None
    check_minutes(args.minutes)
    for seed in args.seeds:
        check_seed(seed)
        check_seed(seed + args.stream_offset, "--seeds plus --stream-offset")  # its stream's seed
    check_output(args.output, "--output", "*-s[0-9]*")  # a file failed after the bundle loaded

    import keras

    from microspeech.data import load_dataset
    from microspeech.detection.classify import KeywordSpotter
    from microspeech.detection.keyword_model import load_keyword_model
    from microspeech.detection.stream_run import run_spotter
    from microspeech.evaluation.evaluate import score_tflite
    from microspeech.evaluation.metrics import balanced_accuracy, overall_accuracy
    from microspeech.models import resolve_model
    from microspeech.tflite.convert import build_tflite
    from microspeech.training.stream_selection import ValidationStream

    dataset_dir = shared_bundle(SUBSET)
    dataset = load_dataset(dataset_dir)
    by_rule: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:
        folder = args.output / f"{args.model}-s{seed}"
        if not (folder / "manifest.json").is_file():
            train_keeping_epochs(args.model, dataset_dir, seed, folder)
        model = resolve_model(str(folder))
        spec = model.spec
        rows = list(csv.DictReader((folder / "history.csv").open()))
        chosen = rule_epochs(rows)
        validation = validation_clips(dataset, spec, seed)
        long_spec = dataclasses.replace(
            spec, train=dataclasses.replace(spec.train, stream_validation_minutes=args.minutes)
        )
        stream = ValidationStream.build(dataset, long_spec, seed=seed + args.stream_offset).stream
        keras_model = keras.models.load_model(model.keras_path)
        scored: dict[int, dict[str, float]] = {}
        for epoch in sorted(set(chosen.values())):
            weights = np.load(folder / "epochs" / f"epoch_{epoch:03d}.npz")
            assert len(weights.files) == len(keras_model.variables)
            for index, variable in enumerate(keras_model.variables):
                variable.assign(weights[f"arr_{index}"])
            path = folder / "epochs" / f"epoch_{epoch:03d}.tflite"
            path.write_bytes(build_tflite(keras_model, validation.features, spec.parameters(), seed=seed))
            scores = score_tflite(path, validation.features)
            keyword_model = load_keyword_model(path)
            spotter = KeywordSpotter(keyword_model, keyword_model.detection, reset_after_detection=False)
            run, _ = run_spotter(spotter, stream, f"seed {seed}, epoch {epoch}", False)
            misses = best_misses(stream, run, keyword_model, BUDGETS)
            scored[epoch] = {
                "accuracy": overall_accuracy(scores, validation.labels),
                "balanced": balanced_accuracy(scores, validation.labels),
                **{f"miss{b}": miss for b, miss in misses.items()},
            }
        print(f"\n## seed {seed}: {len(rows)} epochs", flush=True)
        for rule, epoch in chosen.items():
            s = scored[epoch]
            by_rule.setdefault(rule, []).append(s)
            misses = " / ".join(f"{100 * s[f'miss{b}']:.1f}" for b in BUDGETS)
            print(
                f"{rule:28s} epoch {epoch:3d}: clips {100 * s['accuracy']:.2f}% / balanced "
                f"{100 * s['balanced']:.2f}%, miss at <= 2 / 6 / 20 FA/h {misses}%"
            )
    print(f"\n## mean of seeds {' '.join(map(str, args.seeds))} (range of the miss at <= 2 FA/h)")
    print("| rule | val clip acc. / balanced | val stream miss at <= 2 / 6 / 20 FA/h | range at <= 2 |")
    print("|---|---|---|---|")
    for rule, values in by_rule.items():
        mean = {key: 100 * np.mean([v[key] for v in values]) for key in values[0]}
        low, high = (100 * f([v["miss2"] for v in values]) for f in (np.min, np.max))
        misses = " / ".join(f"{mean[f'miss{b}']:.1f}" for b in BUDGETS)
        clips = f"{mean['accuracy']:.2f}% / {mean['balanced']:.2f}%"
        print(f"| {rule} | {clips} | {misses}% | {low:.1f}-{high:.1f} |")


if __name__ == "__main__":
    run(main)
