"""Conversion refuses, naming the layer, what TFLM cannot run here: before training for recurrent
layers (TensorFlow's int8 calibration segfaulted on an LSTM), after conversion for other ops."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.models import get_model_spec, list_models
from microspeech.tflite.convert import QuantizationError, check_convertible_layers, convert_to_int8


def _model(middle):
    import keras

    features = keras.Input(shape=(49, 40), name="features")
    x = middle(features)
    return keras.Model(features, keras.layers.Dense(4, activation="softmax")(x))


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_passes_the_layer_check(name):
    check_convertible_layers(get_model_spec(name).build_model())


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "Bidirectional", "TimeDistributed"])
def test_recurrent_layers_are_refused_by_name_before_converting(kind):
    import keras

    def middle(x):
        if kind == "Bidirectional":
            return keras.layers.Bidirectional(keras.layers.GRU(4, name="inner_gru"), name="both_ways")(x)
        if kind == "TimeDistributed":
            x = keras.layers.Reshape((49, 40, 1))(x)
            x = keras.layers.TimeDistributed(keras.layers.SimpleRNN(2, name="per_frame_rnn"))(x)
            return keras.layers.Flatten()(x)
        return getattr(keras.layers, kind)(4, name="my_recurrent")(x)

    model = _model(middle)
    expected = {"Bidirectional": "both_ways", "TimeDistributed": "per_frame_rnn"}.get(kind, "my_recurrent")
    with pytest.raises(QuantizationError, match=f"layer '{expected}' .*recurrent layers do not convert"):
        check_convertible_layers(model)
    with pytest.raises(QuantizationError, match="recurrent"):
        convert_to_int8(model, np.zeros((4, 49, 40), np.float32))  # refused before the converter runs


def test_an_op_outside_the_builtins_names_its_layer():
    import keras

    def middle(x):
        x = keras.layers.Reshape((49, 40, 1))(x)
        x = keras.layers.Conv2D(2, (3, 3), strides=(2, 2))(x)
        return keras.layers.GlobalAveragePooling2D(name="my_global_pool")(x)

    features = np.random.default_rng(0).integers(-128, 128, (20, 49, 40)).astype(np.float32)
    with pytest.raises(QuantizationError, match=r"MEAN \(output '[^']*my_global_pool[^']*'\).*allowed: ADD"):
        convert_to_int8(_model(middle), features)
