"""Training throughput at batch 32: our training loop vs plain Keras `fit`, same model and data.

    .venv/bin/python benchmarks/training_throughput.py [--samples 6400] [--repeats 3] [--cpu avx2]

All variants train the tflite_micro_speech model (Adam, class-weighted categorical
cross-entropy, dropout, batch norm, TF op determinism) on the same int8 features, each in
a fresh process because TensorFlow's thread settings are per process:
- `keras`: plain `model.fit(x, y, batch_size=32)` with TensorFlow's default threads and
  TensorFlow's default oneDNN policy for the CPU (on only with AVX512-VNNI/BF16, AVX-VNNI or AMX);
- `keras-1-thread`: the same `fit` with `microspeech train`'s thread settings (to separate
  what the threads give from what the loop gives);
- `microspeech`: `FastTrainer` as `microspeech train` runs it (oneDNN on: microspeech asks for it).
The variants alternate `--repeats` times (a busy neighbour slows all alike); the best
timed epoch (after a warm-up epoch) of each is reported in samples per second.

`--cpu avx2` runs every variant as TensorFlow runs on a CPU with AVX2 and FMA but without
AVX-512 (e.g. AMD EPYC Zen 2/3; bundles.tensorflow_environment): TensorFlow's default leaves
oneDNN off there, and oneDNN, where on, is capped at its AVX2 kernels.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bundles import (
    CPU_CHOICES,
    CPU_HELP,
    description,
    machine_description,
    positive_int,
    run,
    tensorflow_environment,
)

BATCH = 32
VARIANTS = ("keras", "keras-1-thread", "microspeech")


def measure(variant: str, samples: int) -> tuple[float, bool]:
    """Best of two timed epochs after one warm-up, in this (fresh) process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from microspeech.models import get_model_spec
    from microspeech.training.callbacks import balanced_class_weights
    from microspeech.training.loop import FastTrainer
    from microspeech.training.trainer import configure_threads, onednn_enabled

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
    return best, onednn_enabled()


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--samples", type=positive_int, default=6400)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--cpu", choices=CPU_CHOICES, default="native", help=CPU_HELP)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    if args.variant:
        speed, onednn = measure(args.variant, args.samples)
        print(speed, int(onednn))
        return
    print(machine_description(), flush=True)
    best = dict.fromkeys(VARIANTS, 0.0)
    onednn = dict.fromkeys(VARIANTS, False)
    for _ in range(args.repeats):
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--variant", variant, "--samples", str(args.samples)]
            env = tensorflow_environment(args.cpu, microspeech=variant == "microspeech")
            output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            speed, onednn_flag = output.split()[-2:]
            best[variant] = max(best[variant], float(speed))
            onednn[variant] = onednn_flag == "1"
    cores = len(os.sched_getaffinity(0))
    emulated = ", as on an AVX2-only CPU (oneDNN capped at AVX2)" if args.cpu == "avx2" else ""
    print(
        f"cores: {cores}, samples: {args.samples}, batch {BATCH}, best of {args.repeats} processes x 2 epochs"
        f"{emulated}"
    )
    for variant in VARIANTS:
        state = "on" if onednn[variant] else "off"
        print(f"{variant:15s}: {best[variant]:10,.0f} samples/s  (TensorFlow oneDNN {state})")
    print(f"ratio microspeech / plain keras fit         : {best['microspeech'] / best['keras']:6.2f}x")
    print(
        f"ratio microspeech / keras fit, same threads : {best['microspeech'] / best['keras-1-thread']:6.2f}x"
    )


if __name__ == "__main__":
    run(main)
