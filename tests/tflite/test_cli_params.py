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


def test_set_stores_detection_parameters_as_mltk_update_params_does(mltk_tflite_path, tmp_path):
    # MLTK's older models store latency_ms=0, which no stream command runs; --set rewrites it.
    from microspeech.detection.keyword_model import ModelLoadError, load_keyword_model
    from microspeech.tflite.metadata import read_parameters, write_parameters

    model = tmp_path / "old.tflite"
    model.write_bytes(write_parameters(mltk_tflite_path.read_bytes(), {
        **read_parameters(mltk_tflite_path.read_bytes()), "latency_ms": 0,
    }))
    with pytest.raises(ModelLoadError, match=f"params {model} --set latency_ms=VALUE` rewrites it"):
        load_keyword_model(model)
    setting = ["--set", "latency_ms=100", "--set", "detection_threshold_list=90,91,255,255"]
    result = CliRunner().invoke(app, ["params", str(model), *setting, "--json"])
    assert result.exit_code == 0, result.output
    assert "stored latency_ms=100, detection_threshold_list=[90, 91, 255, 255]" in result.stderr
    assert json.loads(result.stdout)["latency_ms"] == 100  # the note stays off --json's output
    loaded = load_keyword_model(model)
    assert loaded.detection.latency_ms == 100 and loaded.class_thresholds == [90, 91, 255, 255]
    result = CliRunner().invoke(app, ["params", str(model), "--set", "detection_threshold_list=none"])
    assert result.exit_code == 0 and "detection_threshold_list" not in read_parameters(model.read_bytes())
    # Again, with no list left: said, and the file left as it is (it claimed to store a change).
    before = model.read_bytes()
    result = CliRunner().invoke(app, ["params", str(model), "--set", "detection_threshold_list=none"])
    assert result.exit_code == 0 and "has no detection_threshold_list: nothing to remove" in result.output
    assert "stored" not in result.output and model.read_bytes() == before


@pytest.mark.parametrize(
    ("assignment", "said"),
    [
        ("latency_ms", "--set 'latency_ms': expected KEY=VALUE"),
        ("latency_ms=1.5", "--set latency_ms=1.5: expected a whole number"),
        ("latency_ms=0", "--set: detection parameter latency_ms=0 is out of range"),
        # The part multiplies by an int: 1.5 would act as 1 there.
        ("volume_gain=1.5", "--set volume_gain=1.5: expected a whole number (the firmware multiplies"),
        ("fe.window_size_ms=20", "--set fe.window_size_ms: not a detection parameter"),
        ("detection_threshold_list=1,2,3", "detection_threshold_list has 3 entries for 4 classes"),
        ("detection_threshold_list=1,x,3,4", "expected whole numbers, comma-separated, or none"),
    ],
)
def test_set_refuses_a_bad_value_and_leaves_the_file_as_it_was(mltk_tflite_path, tmp_path, assignment, said):
    model = tmp_path / "model.tflite"
    model.write_bytes(mltk_tflite_path.read_bytes())
    result = CliRunner().invoke(app, ["params", str(model), "--set", assignment])
    assert result.exit_code == 2 and said in result.output, result.output
    assert model.read_bytes() == mltk_tflite_path.read_bytes()


def test_set_on_a_trained_model_is_noted_in_its_manifest(trained_model_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_model_dir, run)
    result = CliRunner().invoke(app, ["params", str(run), "--set", "suppression_ms=1000"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["detection_parameters_set"][-1]["parameters"] == {"suppression_ms": 1000}
    assert "detection_calibration" in manifest  # what train chose stays on record


def test_a_tflite_given_as_a_file_is_read_past_a_damaged_manifest_beside_it(trained_model_dir, tmp_path):
    # params and summarize of the .tflite itself stopped at "unreadable manifest": the file holds
    # what they read. A folder or name still needs its manifest.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_model_dir, run)
    (run / "manifest.json").write_text("{broken")
    tflite = next(run.glob("*.tflite"))
    result = CliRunner().invoke(app, ["params", str(tflite), "--set", "suppression_ms=1000"])
    assert result.exit_code == 0, result.output
    assert "unreadable manifest" in result.output and "as a file of its own" in result.output
    assert (run / "manifest.json").read_text() == "{broken"  # not rewritten
    assert CliRunner().invoke(app, ["summarize", str(tflite)]).exit_code == 0
    folder = CliRunner().invoke(app, ["params", str(run)])
    assert folder.exit_code == 2 and "unreadable manifest" in folder.output


def test_a_new_threshold_drops_a_stored_per_class_list_and_says_so(mltk_tflite_path, tmp_path):
    # The firmware reads a stored list instead of the threshold: --set detection_threshold did nothing.
    from microspeech.tflite.metadata import read_parameters, write_parameters

    source = mltk_tflite_path.read_bytes()
    model = tmp_path / "listed.tflite"
    listed = {**read_parameters(source), "detection_threshold_list": [242] * 4}
    model.write_bytes(write_parameters(source, listed))
    result = CliRunner().invoke(app, ["params", str(model), "--set", "detection_threshold=100"])
    assert result.exit_code == 0, result.output
    said = "dropped the stored detection_threshold_list [242, 242, 242, 242]"
    assert said in " ".join(result.output.split())
    stored = read_parameters(model.read_bytes())
    assert stored["detection_threshold"] == 100 and "detection_threshold_list" not in stored


def test_export_takes_mltks_latency_of_zero(mltk_tflite_path, tmp_path):
    # MLTK's older models store latency_ms=0 (its loop runs as fast as it can): export refused them.
    from microspeech.tflite.metadata import read_parameters, write_parameters

    source = mltk_tflite_path.read_bytes()
    model = tmp_path / "old.tflite"
    model.write_bytes(write_parameters(source, {**read_parameters(source), "latency_ms": 0}))
    result = CliRunner().invoke(app, ["export", str(model), "--c", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    header = (tmp_path / "c" / "tflite_micro_speech_model_settings.h").read_text()
    assert "_LATENCY_MS 0\n" in header
    model.write_bytes(write_parameters(source, {**read_parameters(source), "detection_threshold": 300}))
    result = CliRunner().invoke(app, ["export", str(model), "--c", str(tmp_path / "c2")])
    assert result.exit_code == 2 and f"microspeech params {model} --set NAME=VALUE" in result.output


def test_set_names_a_bad_stored_value_and_refuses_a_count_no_window_holds(mltk_tflite_path, tmp_path):
    from microspeech.tflite.metadata import read_parameters, write_parameters

    source = mltk_tflite_path.read_bytes()
    model = tmp_path / "old.tflite"
    model.write_bytes(write_parameters(source, {**read_parameters(source), "latency_ms": 0}))
    # The stored latency is the problem, not the threshold the user set.
    result = CliRunner().invoke(app, ["params", str(model), "--set", "detection_threshold=100"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "stores latency_ms=0, out of range" in text
    assert "--set latency_ms=VALUE" in text
    # Written, it would never detect (classify_audio only warns of it at run time).
    fine = tmp_path / "fine.tflite"
    fine.write_bytes(source)
    result = CliRunner().invoke(app, ["params", str(fine), "--set", "minimum_count=50"])
    assert result.exit_code == 2 and "nothing would ever be detected" in " ".join(result.output.split())
    assert fine.read_bytes() == source
    # Stored so before, it is the model's value, not the threshold the user set.
    counted = tmp_path / "counted.tflite"
    counted.write_bytes(write_parameters(source, {**read_parameters(source), "minimum_count": 50}))
    result = CliRunner().invoke(app, ["params", str(counted), "--set", "detection_threshold=150"])
    assert result.exit_code == 2 and f"{counted} stores minimum_count 50" in " ".join(result.output.split())


def test_set_on_a_trained_run_keeps_its_manifests_file_size_true(trained_model_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_model_dir, run)
    listed = "detection_threshold_list=250,120,255,255"
    result = CliRunner().invoke(app, ["params", str(run), "--set", listed])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["files"]["tflite_bytes"] == (run / manifest["files"]["tflite"]).stat().st_size
