"""Models for the evaluation tests: a hand-built tiny Keras model and its int8 .tflite.

Session-scoped: building and converting takes a few seconds, every test reuses them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_CLASSES = ["yes", "no", "_unknown_", "_silence_"]


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model.keras, model.tflite): Conv2D(2, 10x8, stride 2) -> Flatten -> Dense(4, softmax), seeded."""
    import keras

    from microspeech.training.quantize import convert_to_int8

    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((49, 40, 1)),
            keras.layers.Conv2D(2, (10, 8), strides=(2, 2), padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(len(TINY_CLASSES), activation="softmax"),
        ]
    )
    # Small weights keep the softmax away from saturation, so the scores spread over [0, 1].
    model.set_weights([w * 0.05 for w in model.get_weights()])
    rng = np.random.default_rng(5)
    representative = rng.integers(-128, 128, size=(64, 49, 40, 1)).astype(np.float32)
    directory = tmp_path_factory.mktemp("tiny_model")
    keras_path = directory / "tiny.keras"
    model.save(keras_path)
    tflite_path = directory / "tiny.tflite"
    tflite_path.write_bytes(convert_to_int8(model, representative))
    return keras_path, tflite_path
