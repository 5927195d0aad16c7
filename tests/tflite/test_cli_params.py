"""`microspeech params` prints a model's embedded parameters and fails clearly on bad input."""

from __future__ import annotations

import json

import pytest
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


def test_json_stays_strict_json_with_a_nan_parameter(mltk_tflite_path, tmp_path):
    # A bare NaN was printed, which strict JSON parsers refuse.
    from microspeech.tflite.metadata import read_parameters, write_parameters

    source = mltk_tflite_path.read_bytes()
    odd = tmp_path / "odd.tflite"
    odd.write_bytes(write_parameters(source, {**read_parameters(source), "volume_gain": float("nan")}))
    result = CliRunner().invoke(app, ["params", str(odd), "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert values["volume_gain"] == "nan" and values["detection_threshold"] == 185
