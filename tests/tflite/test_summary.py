"""Layer table and MAC/OP counts: MLTK's totals on MLTK's model and on our converter's output."""

from __future__ import annotations

import pytest

from microspeech.testing.readback import layer_table_text
from microspeech.tflite.summary import format_units, summarize_keras, summarize_tflite

pytestmark = pytest.mark.xdist_group("tflite_models")


def test_mltk_model_table_and_totals(mltk_tflite_bytes):
    summary = summarize_tflite(mltk_tflite_bytes)
    assert [layer.opcode for layer in summary.layers] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert summary.total_macs == 336_000 and summary.total_ops == 680_012
    assert [(layer.macs, layer.ops) for layer in summary.layers] == [
        (320_000, 644_000),
        (0, 4_000),
        (16_000, 32_004),
        (0, 8),
    ]
    text = layer_table_text(summary)
    # the rows of MLTK's own summary of this model
    assert (
        "| 0     | conv_2d         | 49x40x1 (int8) | 25x20x8 (int8) "
        "| Padding:same stride:2x2 activation:relu |"
    ) in text
    assert "|       |                 | 10x8x1 (int8)  |                |" in text
    assert "| 2     | fully_connected | 4000 (int8)    | 4 (int8)       | Activation:none" in text
    assert "Total MACs: 336.000 k" in text and "Total OPs: 680.012 k" in text
    assert summary.parameters["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    assert summary.file_size == len(mltk_tflite_bytes)


def test_our_converter_output(seed_tflite_bytes):
    summary = summarize_tflite(seed_tflite_bytes)
    assert [layer.opcode for layer in summary.layers] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert summary.total_macs == 336_000 and summary.total_ops == 680_012
    assert summary.inputs[0].shape == (1, 49, 40, 1) and summary.inputs[0].dtype == "int8"
    assert summary.weights_bytes == 10 * 8 * 8 + 8 * 4 + 4000 * 4 + 4 * 4 + 2 * 4


def test_keras_model_counts_like_mltk(seed_keras):
    _, path = seed_keras
    summary = summarize_keras(path)
    # MLTK's summary of its float model: 16,684 params, 336.000 k MACs, 684.004 k OPs
    assert summary.total_params == 16_684 and summary.trainable_params == 16_668
    assert summary.total_macs == 336_000 and summary.total_ops == 684_004


def test_other_ops_hand_counted(tiny_tflite_bytes):
    summary = summarize_tflite(tiny_tflite_bytes)
    ops = {layer.opcode: (layer.macs, layer.ops) for layer in summary.layers}
    assert ops["DEPTHWISE_CONV_2D"] == (3 * 3 * 10 * 8 * 2, 2 * 1440 + 160)
    assert ops["AVERAGE_POOL_2D"] == (0, 5 * 4 * 2 * (2 * 2 + 1))
    assert ops["CONV_2D"] == (2 * 5 * 4 * 4, 2 * 160 + 80)
    assert ops["MAX_POOL_2D"] == (0, 2 * 2 * 4 * 2 * 2)
    assert ops["FULLY_CONNECTED"] == (16 * 3, 2 * 48 + 3)
    assert ops["SOFTMAX"] == (0, 6)
    depthwise = next(layer for layer in summary.layers if layer.opcode == "DEPTHWISE_CONV_2D")
    assert "Padding:valid" in depthwise.config


def test_format_units():
    assert format_units(336_000) == "336.000 k"
    assert format_units(680_012) == "680.012 k"
    assert format_units(1_500_000) == "1.500 M"
    assert format_units(8) == "8"
    assert format_units(0) == "0"


def test_more_keras_layers_and_a_transposed_convolution_hand_counted():
    # Conv1D, SeparableConv2D and LSTM counted 0 MACs, Dense one row of a 2-D input, and a
    # TRANSPOSE_CONV 4x too many (its output elements x kernel instead of its input elements').
    import keras
    import numpy as np
    import tensorflow as tf

    inputs = keras.Input((49, 40))
    rows = keras.layers.Dense(8)(inputs)  # 49 rows of 40 -> 8
    conv1d = keras.layers.Conv1D(4, 5)(rows)  # 45 x (5 x 8 -> 4)
    recurrent = keras.layers.LSTM(16)(conv1d)  # 45 steps x 4 gates x 16 x (4 + 16)
    image = keras.layers.Reshape((49, 40, 1))(inputs)
    separable = keras.layers.SeparableConv2D(8, (3, 3), padding="same")(image)  # 3x3 x 1960, then 1960 x 8
    model = keras.Model(inputs, [recurrent, separable])
    by_name = {layer.name: layer.macs for layer in summarize_keras(model).layers}
    macs = {type(layer).__name__: by_name[layer.name] for layer in model.layers}
    assert macs["Dense"] == 49 * 40 * 8
    assert macs["Conv1D"] == 45 * 5 * 8 * 4
    assert macs["LSTM"] == 45 * 4 * 16 * (4 + 16)
    assert macs["SeparableConv2D"] == 9 * 1960 + 1960 * 8

    transposed_in = keras.Input((25, 20, 4))
    transposed = keras.Model(
        transposed_in, keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(transposed_in)
    )
    assert summarize_keras(transposed).total_macs == 25 * 20 * 4 * 3 * 3 * 4
    converter = tf.lite.TFLiteConverter.from_keras_model(transposed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.full((1, 25, 20, 4), v, np.float32)] for v in (-1.0, 1.0))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    layers = summarize_tflite(converter.convert()).layers
    assert next(layer for layer in layers if layer.opcode == "TRANSPOSE_CONV").macs == 72_000


def test_a_loop_bodys_operators_are_said_to_be_left_out_of_the_totals():
    # An LSTM's WHILE body (about 175k MACs) was silently missing: "Total MACs: 64".
    import keras
    import tensorflow as tf

    inputs = keras.Input((49, 40), batch_size=1)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.LSTM(16)(inputs)))
    summary = summarize_tflite(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert summary.other_subgraphs >= 1 and "WHILE body" in summary.uncounted_note
    seed_like = summarize_keras(model)  # the Keras summary counts the recurrent layer itself
    assert seed_like.total_macs == 49 * 4 * 16 * (40 + 16) + 16 * 4
