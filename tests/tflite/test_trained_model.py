"""The tooling on models that went through our own converter path.

`input_reshape_tflite_bytes`: the seed taking (49, 40) features (a leading RESHAPE);
`trained_model_dir`: the `tflite_micro_speech-test` dry run trained on the real subset.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.testing.readback import parse_c_array
from microspeech.tflite.graph import remove_input_reshape, simplify_graph
from microspeech.tflite.metadata import read_parameters
from microspeech.tflite.profile import find_min_arena_size
from microspeech.tflite.runtime import TfliteRunner
from microspeech.tflite.summary import summarize_tflite

pytestmark = pytest.mark.xdist_group("tflite_models")


def _opcodes(tflite_bytes: bytes) -> list[str]:
    return [layer.opcode for layer in summarize_tflite(tflite_bytes).layers]


def test_input_reshape_removal(input_reshape_tflite_bytes, seed_tflite_bytes, random_features):
    original = input_reshape_tflite_bytes
    assert _opcodes(original) == ["RESHAPE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert summarize_tflite(original).total_ops == 680_012 + 1_960
    without_input = remove_input_reshape(original)
    assert _opcodes(without_input) == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert summarize_tflite(without_input).total_ops == 680_012
    simplified = simplify_graph(original)
    assert _opcodes(simplified) == ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    reference = TfliteRunner(original, "tflm").predict(random_features)
    # same weights as the seed model converted with a 4-D input
    assert np.array_equal(TfliteRunner(seed_tflite_bytes, "tflm").predict(random_features), reference)
    for model in (without_input, simplified):
        for backend in ("tflm", "litert"):
            runner = TfliteRunner(model, backend)
            assert runner.input_details.shape == (1, 49, 40, 1)
            assert np.array_equal(runner.predict(random_features), reference)
    arenas = [find_min_arena_size(model) for model in (simplified, without_input, original)]
    assert arenas[0] < arenas[1] <= arenas[2]
    assert remove_input_reshape(seed_tflite_bytes) == seed_tflite_bytes  # nothing to do


def test_commands_on_trained_model(trained_model_dir, tmp_path, random_features):
    tflite_path = next(trained_model_dir.glob("*.tflite"))
    params = read_parameters(tflite_path)
    assert params["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    assert 0 <= params["detection_threshold"] <= 255  # calibrated on the validation stream
    assert params["runtime_memory_size"] >= find_min_arena_size(tflite_path) - 16
    tflite_bytes = tflite_path.read_bytes()
    simplified = simplify_graph(tflite_bytes)
    reference = TfliteRunner(tflite_bytes, "litert").predict(random_features)
    assert np.array_equal(TfliteRunner(simplified, "tflm").predict(random_features), reference)
    assert summarize_tflite(simplified).total_ops == 676_012

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})
        assert result.exit_code == 0, result.output
        return result.output

    folder = str(trained_model_dir)
    assert "Total MACs: 336.000 k" in run("summarize", folder, "--tflite")
    assert "Total params: 16,684" in run("summarize", folder)
    assert "estimate" in run("profile", folder, "--runs", "10")
    run("export", folder, "--c", str(tmp_path / "c"))
    source = next((tmp_path / "c").glob("*.cc"))
    assert parse_c_array(source.read_text()) == tflite_bytes
    run("view", folder, "--tflite", "--out", str(tmp_path / "view"))
    assert len(list((tmp_path / "view").glob("*.svg"))) == 1
    # The .keras file stands for its model as a folder does: the commands that read a .tflite read
    # the one beside it (params, profile and export said "TFL3 missing"; summarize --tflite drew Keras).
    keras_file = str(next(trained_model_dir.glob("*.keras")))
    assert "detection_threshold" in run("params", keras_file)
    assert "estimate" in run("profile", keras_file, "--runs", "10")
    assert "Total MACs: 336.000 k" in run("summarize", keras_file, "--tflite")
    assert "Total params: 16,684" in run("summarize", keras_file)
    run("export", keras_file, "--c", str(tmp_path / "c2"))
    assert parse_c_array(next((tmp_path / "c2").glob("*.cc")).read_text()) == tflite_bytes
