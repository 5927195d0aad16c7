"""`microspeech summarize` and `microspeech profile` on real models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from microspeech.cli import app

pytestmark = pytest.mark.xdist_group("tflite_models")


def _run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})


def test_summarize_tflite(mltk_tflite_path):
    result = _run("summarize", str(mltk_tflite_path))
    assert result.exit_code == 0, result.output
    assert "Total MACs: 336.000 k" in result.output and "Total OPs: 680.012 k" in result.output
    assert "fully_connected" in result.output and "detection_threshold" in result.output
    assert "file size: 21.6kB (21,616 bytes)" in result.output


def test_summarize_keras(seed_keras):
    _, path = seed_keras
    result = _run("summarize", str(path))
    assert result.exit_code == 0, result.output
    assert "Total MACs: 336.000 k" in result.output and "Total OPs: 684.004 k" in result.output
    assert "Total params: 16,684" in result.output


def test_summarize_unknown_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path))
    result = _run("summarize", "no_such_model")
    assert result.exit_code == 2 and "no_such_model" in result.output


def test_profile(mltk_tflite_path, tmp_path):
    report_path = tmp_path / "profile.json"
    result = _run(
        "profile", str(mltk_tflite_path), "--runs", "20", "--clock-mhz", "100", "--json", str(report_path)
    )
    assert result.exit_code == 0, result.output
    assert "9,616 B" in result.output and "estimate" in result.output and "7,440 B" in result.output
    report = json.loads(report_path.read_text())
    assert report["arena"]["min_arena_bytes"] == 9616 and report["mcu_estimate"]["clock_mhz"] == 100
    result = _run("profile", str(mltk_tflite_path), "--clock-mhz", "0")
    assert result.exit_code == 2 and "--clock-mhz" in result.output
