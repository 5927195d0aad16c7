"""Training throughput at batch 32: our training loop vs plain Keras `fit`, same model and data.

    .venv/bin/python benchmarks/training_throughput.py [--samples 6400] [--repeats 3]

All variants train the tflite_micro_speech model (Adam, class-weighted categorical
cross-entropy, dropout, batch norm, TF op determinism) on the same int8 features, each in
a fresh process because TensorFlow's thread settings are per process:
- `keras`: plain `model.fit(x, y, batch_size=32)` with TensorFlow's default threads;
- `keras-1-thread`: the same `fit` with `microspeech train`'s thread settings (to separate
  what the threads give from what the loop gives);
- `microspeech`: `FastTrainer` as `microspeech train` runs it.
The variants alternate `--repeats` times (a busy neighbour slows all alike); the best
timed epoch (after a warm-up epoch) of each is reported in samples per second.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bundles import machine_description

BATCH = 32
VARIANTS = ("keras", "keras-1-thread", "microspeech")


def measure(variant: str, samples: int) -> float:
    """Best of two timed epochs after one warm-up, in this (fresh) process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from microspeech.models import get_model_spec
    from microspeech.training.callbacks import balanced_class_weights
    from microspeech.training.loop import FastTrainer
    from microspeech.training.trainer import configure_threads

    if variant != "keras":
        configure_threads()
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, (samples, 49, 40)).astype(np.int8)
    labels = rng.choice(4, samples, p=[0.2, 0.2, 0.55, 0.05])
    weights = balanced_class_weights(labels, 4)
    model = get_model_spec("tflite_micro_speech").build_model()
    if variant == "microspeech":
        trainer = FastTrainer(model, 1e-3, weights)
        epoch = lambda: trainer.train_epoch(features, labels, BATCH, rng)  # noqa: E731
    else:
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        x, class_weight = features.astype(np.float32), dict(enumerate(weights))
        epoch = lambda: model.fit(x, labels, batch_size=BATCH, epochs=1, verbose=0, class_weight=class_weight)  # noqa: E731
    epoch()
    best = 0.0
    for _ in range(2):
        started = time.perf_counter()
        epoch()
        best = max(best, samples / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    if args.variant:
        print(measure(args.variant, args.samples))
        return
    print(machine_description(), flush=True)
    best = dict.fromkeys(VARIANTS, 0.0)
    for _ in range(args.repeats):
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--variant", variant, "--samples", str(args.samples)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            best[variant] = max(best[variant], float(output.split()[-1]))
    cores = len(os.sched_getaffinity(0))
    print(
        f"cores: {cores}, samples: {args.samples}, batch {BATCH}, best of {args.repeats} processes x 2 epochs"
    )
    for variant in VARIANTS:
        print(f"{variant:15s}: {best[variant]:10,.0f} samples/s")
    print(f"ratio microspeech / plain keras fit         : {best['microspeech'] / best['keras']:6.2f}x")
    print(
        f"ratio microspeech / keras fit, same threads : {best['microspeech'] / best['keras-1-thread']:6.2f}x"
    )


if __name__ == "__main__":
    main()
