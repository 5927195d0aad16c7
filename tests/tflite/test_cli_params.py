"""`microspeech params` prints a model's embedded parameters and fails clearly on bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from microspeech.cli import app


def test_params_table_and_json(mltk_tflite_path):
    result = CliRunner().invoke(app, ["params", str(mltk_tflite_path)])
    assert result.exit_code == 0, result.output
    assert "detection_threshold" in result.output and "185" in result.output
    assert "_silence_" in result.output and "fe.pcan_gain_bits" in result.output
    result = CliRunner().invoke(app, ["params", str(mltk_tflite_path), "--json"])
    assert result.exit_code == 0, result.output
    params = json.loads(result.output)
    assert params["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    assert params["fe.noise_reduction_even_smoothing"] == 0.025


def test_params_errors_name_the_input(tmp_path):
    missing = tmp_path / "nope.tflite"
    result = CliRunner().invoke(app, ["params", str(missing)])
    assert result.exit_code == 2 and "nope.tflite" in result.output
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"0123456789abcdef")
    result = CliRunner().invoke(app, ["params", str(bogus)])
    assert result.exit_code == 2 and "TFL3" in result.output
