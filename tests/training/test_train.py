"""End-to-end dry runs: real clips, the real converter, TFLM and LiteRT, resume and errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.data import load_dataset
from microspeech.data.pipeline import make_eval_set
from microspeech.models import ModelResolutionError, get_model_spec, resolve_model
from microspeech.tflite.convert import ALLOWED_OPS, operator_names
from microspeech.tflite.metadata import read_parameters
from microspeech.tflite.runtime import TfliteRunner
from microspeech.training import train_model

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("train")]
DRY_RUN = "tflite_micro_speech-test"


@pytest.fixture(scope="module")
def trained(subset_dir, tmp_path_factory):
    """`microspeech train tflite_micro_speech-test` on real clips, through the CLI."""
    output = tmp_path_factory.mktemp("dry") / "model"
    result = CliRunner().invoke(
        app,
        ["train", DRY_RUN, "--dataset", str(subset_dir), "--seed", "1", "--output", str(output), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def validation(subset_dir):
    spec = get_model_spec(DRY_RUN)
    return make_eval_set(
        load_dataset(str(subset_dir)), "validation", spec.classes, spec.frontend, seed=1, max_per_class=40
    )


def test_dry_run_writes_every_artifact(trained):
    artifacts = resolve_model(trained).artifacts
    assert artifacts.name == DRY_RUN
    for path in (
        artifacts.keras_path,
        artifacts.tflite_path,
        artifacts.history_path,
        artifacts.train_log_path,
        artifacts.manifest_path,
    ):
        assert path.is_file() and path.stat().st_size > 0, path
    assert list((artifacts.logs_dir / "train").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader(artifacts.history_path.open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(float(r["samples_per_second"]) > 0 for r in rows)
    manifest = json.loads(artifacts.manifest_path.read_text())
    assert manifest["seed"] == 1 and manifest["epochs_run"] == 3
    assert len(manifest["dataset"]["fingerprint"]) == 64
    assert manifest["packages"]["tensorflow-cpu"] and manifest["command_line"][:2] == ["microspeech", "train"]
    assert artifacts.spec.classes == ["yes", "no", "_unknown_", "_silence_"]
    assert not list(artifacts.directory.glob("*.partial*"))
    assert resolve_model(artifacts.tflite_path).directory == artifacts.directory
    # microspeech asks TensorFlow for its oneDNN kernels on every CPU (tests/test_package.py).
    assert "TensorFlow oneDNN kernels: on" in artifacts.train_log_path.read_text()


def test_a_cut_tflite_beside_the_keras_model_stops_only_what_needs_it(trained, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(trained, folder)
    tflite = folder / f"{DRY_RUN}.tflite"
    tflite.write_bytes(tflite.read_bytes()[:5000])  # a copy that stopped early
    runner = CliRunner()
    keras_summary = runner.invoke(app, ["summarize", str(folder / f"{DRY_RUN}.keras")])
    assert keras_summary.exit_code == 0, keras_summary.output
    assert "Total MACs: 336.000 k" in keras_summary.output
    tflite_summary = runner.invoke(app, ["summarize", str(folder / f"{DRY_RUN}.keras"), "--tflite"])
    assert tflite_summary.exit_code == 2
    assert f"{tflite}: not a valid .tflite" in " ".join(tflite_summary.output.split())
    with pytest.raises(ModelResolutionError, match="not a valid .tflite"):
        resolve_model(tflite)  # named itself, the .tflite is refused at once


def test_tflite_is_full_int8_with_exactly_the_expected_ops(trained):
    tflite = resolve_model(trained).tflite_path
    assert set(operator_names(tflite.read_bytes())) <= ALLOWED_OPS
    # Both converter RESHAPEs are gone: the input is 1x49x40x1 (as MLTK's model) and
    # FULLY_CONNECTED reads the convolution's output directly.
    assert operator_names(tflite.read_bytes()) == ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    runner = TfliteRunner(tflite, backend="litert")
    details = runner.input_details
    expected = ((1, 49, 40, 1), np.int8, 1.0, 0)
    assert (details.shape, details.dtype, details.scale, details.zero_point) == expected
    assert runner.output_details.dtype == np.int8 and runner.output_details.shape == (1, 4)


def test_parameters_read_back(trained):
    artifacts = resolve_model(trained).artifacts
    params = read_parameters(artifacts.tflite_path)
    spec = artifacts.spec
    assert params["name"] == DRY_RUN and params["version"] == 1
    assert params["classes"] == spec.classes
    assert len(params["hash"]) == 32 and params["date"].endswith("Z")
    assert 4000 < params["runtime_memory_size"] < 20000
    # Calibrated on the validation stream (training.stream_selection); the rest as the spec says.
    chosen = json.loads(artifacts.manifest_path.read_text())["detection_calibration"]["chosen"] or {}
    for key, value in spec.detection.to_dict().items():
        assert params[key] == pytest.approx(chosen.get(key, value))
    frontend = spec.frontend.to_dict()
    assert {k for k in params if k.startswith("fe.")} == set(frontend)
    assert params["fe.filterbank_n_channels"] == 40 and params["fe.window_step_ms"] == 20


def test_measured_arena_runs_the_model_in_tflm(trained, validation):
    tflite = resolve_model(trained).tflite_path
    arena = read_parameters(tflite)["runtime_memory_size"]
    runner = TfliteRunner(tflite, backend="tflm", arena_size=arena)
    assert runner.predict(validation.features[:3]).shape == (3, 4)


def test_tflm_and_litert_give_identical_outputs_on_validation_features(trained, validation):
    tflite = resolve_model(trained).tflite_path
    litert = TfliteRunner(tflite, backend="litert").predict(validation.features)
    tflm = TfliteRunner(tflite, backend="tflm").predict(validation.features)
    np.testing.assert_array_equal(litert, tflm)
    assert litert.dtype == np.int8 and litert.shape == (len(validation.labels), 4)
    # The outputs depend on the input: not one constant row for every clip.
    assert len(np.unique(litert, axis=0)) > 1


def test_int8_model_follows_the_float_model(trained, validation):
    import keras

    artifacts = resolve_model(trained).artifacts
    model = keras.saving.load_model(artifacts.keras_path)
    float_scores = model.predict(validation.features.astype(np.float32), verbose=0)
    runner = TfliteRunner(artifacts.tflite_path, backend="litert")
    int8_scores = runner.output_details.dequantize(runner.predict(validation.features))
    assert np.abs(float_scores - int8_scores).max() < 0.1


def _metrics(history: Path) -> list[tuple[str, ...]]:
    """History rows without the timing columns."""
    columns = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
    return [tuple(row[c] for c in columns) for row in csv.DictReader(history.open())]


def test_interrupted_run_resumes_to_the_same_result(subset_dir, tmp_path, monkeypatch):
    from microspeech.training import loop

    straight = train_model(
        DRY_RUN, dataset=str(subset_dir), seed=2, output=tmp_path / "straight", progress=False
    )
    original = loop.FastTrainer.train_epoch
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third epoch
        return original(self, *args, **kwargs)

    monkeypatch.setattr(loop.FastTrainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_model(DRY_RUN, dataset=str(subset_dir), seed=2, output=tmp_path / "resumed", progress=False)
    assert not (tmp_path / "resumed" / f"{DRY_RUN}.tflite").exists()
    monkeypatch.setattr(loop.FastTrainer, "train_epoch", original)
    resumed = train_model(
        DRY_RUN, dataset=str(subset_dir), seed=2, output=tmp_path / "resumed", resume=True, progress=False
    )
    assert _metrics(resumed.history_path) == _metrics(straight.history_path)  # deterministic too
    assert "resumed after epoch 2" in resumed.train_log_path.read_text()
    a, b = (TfliteRunner(x.tflite_path).predict(np.zeros((1, 49, 40), np.int8)) for x in (straight, resumed))
    np.testing.assert_array_equal(a, b)
    # Three trainings in this process: the third named its layers conv2d_1_1, and its .tflite's
    # tensors after them, until Keras' name counters were reset for each run.
    assert _tensor_names(resumed.tflite_path) == _tensor_names(straight.tflite_path)
    # A Python call records the command that reruns it, not the host's argv (pytest's here).
    recorded = json.loads(straight.manifest_path.read_text())["command_line"]
    assert recorded == [
        "microspeech", "train", DRY_RUN, "--dataset", str(subset_dir), "--seed", "2",
        "--output", str(tmp_path / "straight"),
    ]


def _tensor_names(path: Path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    return [tensor["name"] for tensor in Interpreter(model_path=str(path)).get_tensor_details()]


def test_resume_refuses_a_checkpoint_of_another_seed(subset_dir, tmp_path):
    from microspeech.training.trainer import ResumeError

    train_model(DRY_RUN, dataset=str(subset_dir), seed=3, output=tmp_path / "m", progress=False, epochs=1)
    with pytest.raises(ResumeError, match="seed"):
        train_model(
            DRY_RUN, dataset=str(subset_dir), seed=4, output=tmp_path / "m", progress=False, resume=True
        )
    # A fresh run into the same folder replaces the earlier one: its log and TensorBoard curves
    # ran on into the new run's before.
    again = train_model(
        DRY_RUN, dataset=str(subset_dir), seed=4, output=tmp_path / "m", progress=False, epochs=1
    )
    assert again.train_log_path.read_text().count(f"train {DRY_RUN} on ") == 1
    assert len(list((again.logs_dir / "train").iterdir())) == 1
    # A run that early stopping ended: --resume --epochs 3 trained nothing and said nothing.
    import io

    from rich.console import Console

    state_path = again.checkpoint_dir / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "stopped": True}))
    said = io.StringIO()
    resumed = train_model(
        DRY_RUN, dataset=str(subset_dir), seed=4, output=tmp_path / "m", progress=False, resume=True,
        epochs=3, console=Console(file=said, width=400),
    )
    assert "the run stopped early after epoch 1 (val_accuracy no longer improving); no epoch to add" in (
        said.getvalue()
    )
    assert json.loads(resumed.manifest_path.read_text())["epochs_run"] == 1


def test_a_fresh_run_stopped_early_leaves_no_earlier_runs_manifest_vouching_for_it(
    subset_dir, tmp_path, monkeypatch
):
    # The earlier run's manifest stayed while the new run wrote its uncalibrated model, so an
    # interrupted run passed for a finished one; and the --resume advice read its checkpoint.
    from microspeech.models import resolve_model
    from microspeech.training import loop

    folder = tmp_path / "m"
    train_model(DRY_RUN, dataset=str(subset_dir), seed=3, output=folder, progress=False, epochs=1)
    assert (folder / "manifest.json").is_file() and (folder / "checkpoint").is_dir()
    # evaluate's results of the earlier model (they stayed beside the new model's files); a user's
    # own eval/ with other files in it is left alone.
    (folder / "eval").mkdir()
    for name in ("eval-results.json", "summary.txt", "tflite-roc.png"):
        (folder / "eval" / name).write_text("earlier model")
    from microspeech.training.trainer import _written_by_evaluate

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("mine")
    assert _written_by_evaluate(folder / "eval") and not _written_by_evaluate(tmp_path / "mine")

    def stopped(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.FastTrainer, "train_epoch", stopped)
    with pytest.raises(KeyboardInterrupt):
        train_model(DRY_RUN, dataset=str(subset_dir), seed=4, output=folder, progress=False, epochs=1)
    assert not (folder / "manifest.json").exists() and not (folder / "checkpoint").exists()
    assert not (folder / "eval").exists()
    assert not (folder / "history.csv").exists()  # the earlier run's epochs beside this run's log
    assert resolve_model(str(folder)).unfinished_run


def test_a_fresh_run_never_deletes_files_no_microspeech_run_wrote(subset_dir, tmp_path):
    # A folder holding checkpoint/weights.bin and a manifest.json of the user's own: "holds an
    # earlier run: this one replaces it", and they were gone.
    folder = tmp_path / "project"
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "checkpoint" / "weights.bin").write_bytes(b"mine")
    (folder / "manifest.json").write_text('{"project": "mine"}')
    with pytest.raises(ValueError, match=r"holds manifest.json, checkpoint/, which no microspeech run wrote"):
        train_model(DRY_RUN, dataset=str(subset_dir), seed=0, output=folder, progress=False, epochs=1)
    assert (folder / "checkpoint" / "weights.bin").read_bytes() == b"mine"
    assert sorted(path.name for path in folder.iterdir()) == ["checkpoint", "manifest.json"]
    # A history.csv of the user's own (their notes on epochs) was replaced by the run's table.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "history.csv").write_text("date,what\n2026-12-07,first try\n")
    with pytest.raises(ValueError, match=r"holds history.csv, which no microspeech run wrote"):
        train_model(DRY_RUN, dataset=str(subset_dir), seed=0, output=tmp_path / "notes", progress=False)
    assert (tmp_path / "notes" / "history.csv").read_text().startswith("date,what")
    (tmp_path / "other" / "train.log").mkdir(parents=True)  # a folder of that name: no log of ours
    with pytest.raises(ValueError, match=r"holds train.log, which no microspeech run wrote"):
        train_model(DRY_RUN, dataset=str(subset_dir), seed=0, output=tmp_path / "other", progress=False)


def test_dry_run_on_tiny_synthetic_dataset(tmp_path):
    artifacts = train_model(
        DRY_RUN, dataset="synthetic-tiny", seed=0, output=tmp_path / "syn", progress=False
    )
    assert operator_names(artifacts.tflite_path.read_bytes()) == ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    assert read_parameters(artifacts.tflite_path)["name"] == DRY_RUN


def test_cosine_schedule_sets_each_epochs_learning_rate(tmp_path):
    import dataclasses

    spec = get_model_spec(DRY_RUN)
    train = dataclasses.replace(
        spec.train, epochs=4, learning_rate_schedule="cosine", cosine_hold_epochs=1, early_stopping_patience=9
    )
    cosine = dataclasses.replace(spec, train=train)
    artifacts = train_model(cosine, dataset="synthetic-tiny", seed=0, output=tmp_path / "c", progress=False)
    with artifacts.history_path.open() as handle:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(handle)]
    # Held for one epoch, then half a cosine: the midpoint, then the minimum at the last epoch.
    low, high = train.min_learning_rate, train.learning_rate
    assert rates == pytest.approx([high, high, (high + low) / 2, low], rel=1e-5)


def test_cli_errors_before_training(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "no_such_model", "--output", str(tmp_path / "x")])
    assert (
        result.exit_code == 2 and "unknown model" in result.output and "tflite_micro_speech" in result.output
    )
    folder = tmp_path / "words"
    from microspeech.audio import write_wav

    for word in ("yes", "cat"):
        for i in range(4):
            write_wav(folder / word / f"s{i}_nohash_0.wav", np.full(8000, 1000 * (i + 1), np.int16))
    result = runner.invoke(app, ["train", DRY_RUN, "--dataset", str(folder), "--output", str(tmp_path / "y")])
    assert result.exit_code == 2 and "'no'" in result.output and "no training clips" in result.output
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize(
    "option, value", [("--epochs", "2"), ("--max-fa-per-hour", "5"), ("--calibration-runtime", "silabs-tflm")]
)
def test_train_options_are_applied_each_on_its_own(subset_dir, tmp_path, option, value):
    # --epochs alone raised UnboundLocalError; --max-fa-per-hour alone was checked, then ignored
    # (the budget written into the .tflite and the manifest was the spec's 2).
    output = tmp_path / "model"
    result = CliRunner().invoke(
        app,
        ["train", DRY_RUN, "--dataset", str(subset_dir), "--output", str(output), "--quiet", option, value],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((output / "manifest.json").read_text())
    if option == "--epochs":
        assert manifest["epochs_run"] == 2
    elif option == "--max-fa-per-hour":
        assert manifest["spec"]["train"]["max_fa_per_hour"] == 5.0
    else:
        assert manifest["detection_calibration"]["runtime"] == "silabs-tflm"
        assert manifest["command_line"][-2:] == ["--calibration-runtime", "silabs-tflm"]
        assert "scored with silabs-tflm" in " ".join(result.output.split())


def test_an_unknown_calibration_runtime_is_refused_before_training(tmp_path):
    output = tmp_path / "model"
    result = CliRunner().invoke(
        app, ["train", DRY_RUN, "--output", str(output), "--calibration-runtime", "cmsis-nn"]
    )
    assert result.exit_code == 2
    assert "--calibration-runtime cmsis-nn: expected one of litert, tflm, silabs-tflm" in result.output
    assert not output.exists()
    with pytest.raises(ValueError, match="--calibration-runtime cmsis-nn"):
        train_model(DRY_RUN, output=output, calibration_runtime="cmsis-nn", progress=False)
    assert not output.exists()


def test_a_spec_object_is_recorded_as_the_call_it_was():
    # A ModelSpec has no command line: the manifest says what was called instead of pytest's argv.
    from microspeech.training.trainer import _api_call

    spec = get_model_spec(DRY_RUN)
    call = _api_call(spec, spec, "synthetic", 3, None, False, 2, "tflm")
    assert call == [
        "python", "-c",
        "microspeech.training.train_model(<ModelSpec 'tflite_micro_speech-test'>, dataset=['synthetic'], "
        "seed=3, epochs=2, calibration_runtime='tflm')",
    ]


def test_training_runs_tensorflow_on_one_intra_op_thread(subset_dir, tmp_path):
    # Building the model before the data is read ran TensorFlow's first op before its threads were
    # set: two intra-op threads summed in another order, and every model's digits changed.
    import subprocess
    import sys

    script = (
        "import sys, tensorflow as tf\n"
        "from microspeech.training import train_model\n"
        f"train_model({DRY_RUN!r}, dataset=sys.argv[1], output=sys.argv[2], progress=False)\n"
        "print('threads', tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(subset_dir), str(tmp_path / "model")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "threads 1"
