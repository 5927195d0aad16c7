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
