"""Train tflite_micro_speech with some recipe settings changed, over several seeds, and score it.

Each `--set KEY=VALUE` replaces one field of the model's `TrainSettings` or
`AugmentationSettings` (VALUE is JSON: `label_smoothing=0.05`, `noise_factor_range=[0,0.3]`).
For every seed it trains on the subset bundle with `train_model` (early stopping on its
validation split), then scores float (Keras) and int8 (LiteRT) on the dev test bundle's
`make_eval_set` features, the features `evaluate_model` uses. Prints one Markdown row per seed
and the mean, the rows of BENCHMARKS.md's "what moved the numbers" table.

    .venv/bin/python benchmarks/recipe_variants.py --seeds 0 1 2 --set label_smoothing=0.05
    .venv/bin/python benchmarks/recipe_variants.py --seeds 0 1 2 --set noise_factor_range=[0,0.3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bundles import (
    DEV_TEST_SET,
    SUBSET,
    check_output,
    description,
    fail,
    machine_description,
    run,
    seed_number,
    shared_bundle,
)
from microspeech.evaluation.metrics import balanced_accuracy, class_accuracies, overall_accuracy


def apply_overrides(spec, assignments: list[str]):
    """The spec with each KEY=VALUE applied to its train or augmentation settings."""
    train, augmentation = spec.train, spec.augmentation
    train_keys = {f.name for f in dataclasses.fields(train)}
    augmentation_keys = {f.name for f in dataclasses.fields(augmentation)}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator:
            fail(f"--set {assignment!r} is not KEY=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            fail(f"--set {key}: {text!r} is not JSON (strings need quotes)")
        if key in train_keys:
            train = dataclasses.replace(train, **{key: value})
        elif key in augmentation_keys:
            value = tuple(value) if isinstance(value, list) else value
            augmentation = dataclasses.replace(augmentation, **{key: value})
        else:
            fail(f"--set {key}: not a TrainSettings or AugmentationSettings field")
    return dataclasses.replace(spec, train=train, augmentation=augmentation)


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", type=Path, help="where the trained models go (default: temporary)")
    args = parser.parse_args()
    from microspeech.models import get_model_spec

    # Before TensorFlow is imported and anything is read: a bad --set or --output failed after that.
    spec = apply_overrides(get_model_spec("tflite_micro_speech"), args.assignments)
    check_output(args.output, "--output", "seed-*")
    print(machine_description(), flush=True)

    import keras

    from microspeech.data import load_dataset
    from microspeech.data.pipeline import make_eval_set
    from microspeech.tflite.runtime import TfliteRunner
    from microspeech.training import train_model

    subset = shared_bundle(SUBSET)
    test_root = shared_bundle(DEV_TEST_SET)
    test = make_eval_set(load_dataset(str(test_root)), "test", spec.classes, spec.frontend)
    label = " ".join(args.assignments) or "the default recipe"

    print(f"variant: {label}; test clips: {len(test.labels)} ({test_root.name})\n")
    print(
        f"| variant | seed | train wall | epochs (best) | float acc. / balanced | int8 acc. / balanced "
        f"| int8 {' / '.join(spec.classes)} (%) |"
    )
    print("|---|---|---|---|---|---|---|")
    results = []
    with tempfile.TemporaryDirectory(prefix="microspeech-variants-") as scratch:
        output = args.output or Path(scratch)
        for seed in args.seeds:
            started = time.perf_counter()
            artifacts = train_model(spec, dataset=str(subset), seed=seed, output=output / f"seed-{seed}",
                                    progress=False)  # fmt: skip
            wall = time.perf_counter() - started
            manifest = json.loads(artifacts.manifest_path.read_text())
            model = keras.models.load_model(artifacts.keras_path, compile=False)
            float_scores = model.predict(test.features.astype(np.float32), verbose=0, batch_size=1024)
            runner = TfliteRunner(artifacts.tflite_path, backend="litert")
            int8_scores = np.asarray(runner.predict(test.features)).reshape(len(test.labels), -1)
            row = []
            for scores in (float_scores, int8_scores):
                recalls = [100 * recall for recall in class_accuracies(scores, test.labels)]
                accuracy = 100 * overall_accuracy(scores, test.labels)
                row.append((accuracy, 100 * balanced_accuracy(scores, test.labels), recalls))
            results.append(row)
            (float_acc, float_bal, _), (int8_acc, int8_bal, int8_recalls) = row
            print(f"| {label} | {seed} | {wall:.0f} s | {manifest['epochs_run']} ({manifest['best_epoch']}) "
                  f"| {float_acc:.2f}% / {float_bal:.2f}% | {int8_acc:.2f}% / {int8_bal:.2f}% "
                  f"| {' / '.join(f'{r:.1f}' for r in int8_recalls)} |", flush=True)  # fmt: skip
    means = np.mean([[f[0], f[1], q[0], q[1]] for f, q in results], axis=0)
    recall_means = np.mean([q[2] for _, q in results], axis=0)
    print(
        f"| {label} | mean of {len(results)} | | | {means[0]:.2f}% / {means[1]:.2f}% "
        f"| **{means[2]:.2f}% / {means[3]:.2f}%** | {' / '.join(f'{r:.1f}' for r in recall_means)} |"
    )


if __name__ == "__main__":
    run(main)
