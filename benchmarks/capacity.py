"""How far the fixed 8-filter model is from the accuracy goal, next to the same recipe with more filters.

Trains `tflite_micro_speech` and, with everything else identical (data, augmentation, class
weights, schedule, seed), a copy whose Conv2D has `--filters` filters; scores both (float Keras,
int8 .tflite in LiteRT) on the dev test bundle. For each model it then reports the
best operating point that shifting the yes/no output biases can reach on the test clips
(a grid over log-score offsets in [-2, 2]): an oracle, for diagnosis only, never a model
result. If even the oracle of a model misses the goal (accuracy >= 90% and balanced accuracy
>= 88%), no threshold or class-weight choice can reach it; a better model is needed.

    .venv/bin/python benchmarks/capacity.py [--filters 32] [--seeds 0 1 2] [--output DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

from bundles import (
    DEV_TEST_SET,
    SUBSET,
    check_output,
    description,
    machine_description,
    positive_int,
    run,
    seed_number,
    shared_bundle,
)
from microspeech.evaluation.metrics import balanced_accuracy, overall_accuracy

GOAL_ACCURACY, GOAL_BALANCED = 90.0, 88.0
SHIFTS = np.linspace(-2.0, 2.0, 41)


def widened(filters: int):
    """The seed builder with another filter count in its Conv2D(10x8, stride 2, same); the rest as is."""
    import keras

    def build(spec):
        frames, channels = spec.input_shape
        features = keras.Input(shape=(frames, channels), name="features")
        x = keras.layers.Reshape((frames, channels, 1))(features)
        x = keras.layers.Conv2D(filters, (10, 8), strides=(2, 2), padding="same", use_bias=True)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Dropout(0.5)(x)
        x = keras.layers.Flatten()(x)
        scores = keras.layers.Dense(len(spec.classes), activation="softmax", name="scores")(x)
        return keras.Model(features, scores, name=f"{spec.name}_{filters}_filters")

    return build


def accuracies(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, balanced accuracy) in percent, by the metrics `evaluate` reports."""
    return 100 * overall_accuracy(scores, labels), 100 * balanced_accuracy(scores, labels)


def oracle_point(scores: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[float, float]:
    """The (accuracy, balanced) pair closest to the goal over yes/no log-score offsets (test-set oracle)."""
    log_scores = np.log(scores + 1e-9)
    best = (-np.inf, 0.0, 0.0)
    yes, no = classes.index("yes"), classes.index("no")
    for shift_yes, shift_no in itertools.product(SHIFTS, SHIFTS):
        offsets = np.zeros(len(classes))
        offsets[yes], offsets[no] = shift_yes, shift_no
        accuracy, balanced = accuracies(log_scores + offsets, labels)
        margin = min(accuracy - GOAL_ACCURACY, balanced - GOAL_BALANCED)
        if margin > best[0]:
            best = (margin, accuracy, balanced)
    return best[1], best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--filters", type=positive_int, default=32, help="conv filters of the comparison model"
    )
    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0])
    parser.add_argument("--output", type=Path, help="where the trained models go (default: temporary)")
    args = parser.parse_args()
    check_output(args.output, "--output", "seed-*", "wide-*")  # a file failed after the first training
    print(machine_description(), flush=True)

    import keras

    from microspeech.data import load_dataset
    from microspeech.data.pipeline import make_eval_set
    from microspeech.models import get_model_spec
    from microspeech.tflite.runtime import TfliteRunner
    from microspeech.training import train_model

    test_root = shared_bundle(DEV_TEST_SET)
    subset = shared_bundle(SUBSET)
    seed_spec = get_model_spec("tflite_micro_speech")
    wide_spec = dataclasses.replace(seed_spec, build=widened(args.filters))
    test = make_eval_set(load_dataset(str(test_root)), "test", seed_spec.classes, seed_spec.frontend)
    classes = list(seed_spec.classes)

    rows = []
    with tempfile.TemporaryDirectory(prefix="microspeech-capacity-") as scratch:
        output = args.output or Path(scratch)
        for seed, (label, spec) in itertools.product(
            args.seeds, [("8 filters (the model)", seed_spec), (f"{args.filters} filters", wide_spec)]
        ):
            started = time.perf_counter()
            directory = output / f"{'seed' if spec is seed_spec else 'wide'}-{seed}"
            artifacts = train_model(spec, dataset=str(subset), seed=seed, output=directory, progress=False)
            wall = time.perf_counter() - started
            model = keras.models.load_model(artifacts.keras_path, compile=False)
            scores = model.predict(test.features.astype(np.float32), verbose=0, batch_size=1024)
            accuracy, balanced = accuracies(scores, test.labels)
            runner = TfliteRunner(artifacts.tflite_path, backend="litert")
            quantized = np.asarray(runner.predict(test.features)).reshape(len(test.labels), -1)
            int8_accuracy, int8_balanced = accuracies(quantized, test.labels)
            oracle = oracle_point(scores, test.labels, classes)
            rows.append(
                f"| {label} | {seed} | {wall:.0f} s | {accuracy:.2f}% / {balanced:.2f}% "
                f"| {int8_accuracy:.2f}% / {int8_balanced:.2f}% "
                f"| {oracle[0]:.2f}% / {oracle[1]:.2f}% |"
            )
            print(rows[-1], flush=True)

    print(
        f"\ntest clips: {len(test.labels)} ({test_root.name}); goal: accuracy >= {GOAL_ACCURACY}%, "
        f"balanced >= {GOAL_BALANCED}%\n"
    )
    print(
        "| model | seed | train wall | float acc. / balanced | int8 acc. / balanced "
        "| best yes/no bias shift on test (oracle) |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    run(main)
