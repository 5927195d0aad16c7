"""Training throughput at batch 32: our fast loop vs plain Keras `fit`, same model, same data, one run.

    .venv/bin/python benchmarks/training_throughput.py [--samples 6400] [--repeats 3]

Both train the tflite_micro_speech model (Adam, weighted categorical cross-entropy,
dropout, batch norm) on the same int8 features; the best of `--repeats` timed epochs (interleaved)
after one warm-up epoch is reported, in samples per second, with the ratio.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from microspeech.models import get_model_spec  # noqa: E402
from microspeech.training.callbacks import balanced_class_weights  # noqa: E402
from microspeech.training.loop import FastTrainer  # noqa: E402

BATCH = 32


def keras_fit(features: np.ndarray, labels: np.ndarray, weights: list[float]):
    """A compiled Keras model and a function that runs one `fit` epoch on the data."""
    keras.utils.set_random_seed(0)
    model = get_model_spec("tflite_micro_speech").build_model()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = features.astype(np.float32)
    class_weight = dict(enumerate(weights))
    return lambda: model.fit(x, labels, batch_size=BATCH, epochs=1, verbose=0, class_weight=class_weight)


def fast_loop(features: np.ndarray, labels: np.ndarray, weights: list[float]):
    """Our trainer and a function that runs one epoch (including moving the epoch's data in)."""
    keras.utils.set_random_seed(0)
    trainer = FastTrainer(get_model_spec("tflite_micro_speech").build_model(), 1e-3, weights)
    rng = np.random.default_rng(0)
    return lambda: trainer.train_epoch(features, labels, BATCH, rng)


def rate(epoch, samples: int) -> float:
    started = time.perf_counter()
    epoch()
    return samples / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tf.config.experimental.enable_op_determinism()  # as `microspeech train` runs
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (args.samples, 49, 40)).astype(np.int8)
    labels = rng.choice(4, args.samples, p=[0.2, 0.2, 0.55, 0.05])
    weights = balanced_class_weights(labels, 4)
    ours_epoch, keras_epoch = fast_loop(features, labels, weights), keras_fit(features, labels, weights)
    ours_epoch(), keras_epoch()  # warm-up: tracing and compilation
    # Interleaved, so a busy neighbour on the shared machine slows both alike; best of each.
    ours = reference = 0.0
    for _ in range(args.repeats):
        ours = max(ours, rate(ours_epoch, args.samples))
        reference = max(reference, rate(keras_epoch, args.samples))
    cores = len(os.sched_getaffinity(0))
    print(f"cores: {cores}, samples: {args.samples}, batch {BATCH}, best of {args.repeats}")
    print(f"plain Keras fit : {reference:10,.0f} samples/s")
    print(f"microspeech loop: {ours:10,.0f} samples/s")
    print(f"ratio           : {ours / reference:10.2f}x")


if __name__ == "__main__":
    main()
