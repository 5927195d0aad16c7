"""`train` refuses bad seeds, damaged or foreign checkpoints and a busy --output before any work."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from microspeech.audio import write_wav
from microspeech.cli import app
from microspeech.files import LockedError, exclusive_lock
from microspeech.training import train_model
from microspeech.training.artifacts import TRAINING_LOCK, ResumeError, load_checkpoint, save_checkpoint

DRY_RUN = "tflite_micro_speech-test"


@pytest.fixture
def words(tmp_path: Path) -> Path:
    folder = tmp_path / "words"
    for word in ("yes", "cat"):
        for i in range(4):
            write_wav(folder / word / f"s{i}_nohash_0.wav", np.full(8000, 1000 * (i + 1), np.int16))
    return folder


def _state(**changes) -> dict:
    state = {
        "model": DRY_RUN,
        "seed": 0,
        "dataset_fingerprint": "x",
        "epoch": 0,
        "stopped": False,
        "reduce_lr": {},
        "early_stopping": {},
        "history": [],
    }
    return {**state, **changes}


def _train(*args: str):
    return CliRunner().invoke(app, ["train", DRY_RUN, "--quiet", *args])


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**70)])
def test_seed_out_of_range_is_refused_and_leaves_nothing(tmp_path, seed):
    result = _train("--seed", seed, "--output", str(tmp_path / "model"))
    assert result.exit_code == 2, result.output
    assert "--seed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "model").exists()


def test_checkpoint_round_trip_and_damaged_files_are_named(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    arrays = {"w/0": np.arange(1000, dtype=np.float32)}
    save_checkpoint(checkpoint, arrays, _state())
    loaded_arrays, loaded_state = load_checkpoint(checkpoint)
    np.testing.assert_array_equal(loaded_arrays["w/0"], arrays["w/0"])
    assert loaded_state == _state()

    npz = checkpoint / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    with pytest.raises(ResumeError, match=r"arrays\.npz: not a readable checkpoint"):
        load_checkpoint(checkpoint)

    save_checkpoint(checkpoint, arrays, _state())
    state = checkpoint / "state.json"
    state.write_bytes(state.read_bytes()[:20])
    with pytest.raises(ResumeError, match=r"state\.json: not a readable checkpoint state"):
        load_checkpoint(checkpoint)
    state.write_text('{"model": "x"}')
    with pytest.raises(ResumeError, match=r"state\.json: not a checkpoint state \(no dataset_fingerprint"):
        load_checkpoint(checkpoint)
    state.write_text("[1, 2]")
    with pytest.raises(ResumeError, match=r"state\.json: not a checkpoint state"):
        load_checkpoint(checkpoint)


def test_resume_names_a_truncated_checkpoint(tmp_path, words):
    output = tmp_path / "model"
    save_checkpoint(output / "checkpoint", {"w/0": np.zeros(4096, np.float32)}, _state())
    npz = output / "checkpoint" / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    result = _train("--dataset", str(words), "--output", str(output), "--resume")
    assert result.exit_code == 2, result.output
    assert str(npz) in result.output.replace("\n", "") and "Traceback" not in result.output
    assert not (output / "train.log").exists()


def test_resume_with_another_seed_says_so(tmp_path, words):
    output = tmp_path / "model"
    save_checkpoint(output / "checkpoint", {"w/0": np.zeros(4, np.float32)}, _state(seed=0))
    result = _train("--dataset", str(words), "--output", str(output), "--resume", "--seed", "5")
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "written with --seed 0, not --seed 5" in message and "dataset" not in message


def test_a_second_training_into_the_same_output_fails_at_once(tmp_path, words, subset_dir):
    output = tmp_path / "model"
    with exclusive_lock(output / TRAINING_LOCK):  # as a running training holds it
        with pytest.raises(LockedError, match="another training"):
            train_model(DRY_RUN, dataset=str(words), output=output, progress=False)
        result = _train("--dataset", str(words), "--output", str(output))
        assert result.exit_code == 2, result.output
        message = " ".join(result.output.split())
        assert f"--output {output}: another training is writing to this folder" in message
    assert sorted(entry.name for entry in output.iterdir()) == [TRAINING_LOCK]  # no train.log
    # A finished run leaves no lock file behind (it stayed in every run folder).
    artifacts = train_model(DRY_RUN, dataset=str(subset_dir), output=output, progress=False, epochs=1)
    assert artifacts.tflite_path.exists() and not (output / TRAINING_LOCK).exists()


def test_a_refused_dataset_leaves_no_output_folder(tmp_path, words):
    output = tmp_path / "new" / "model"
    result = _train("--dataset", str(words), "--output", str(output))
    assert result.exit_code == 2 and "no training clips" in result.output
    assert not output.exists()


def test_an_output_that_is_a_file_is_refused(tmp_path, words):
    (tmp_path / "model").write_text("a file")
    result = _train("--dataset", str(words), "--output", str(tmp_path / "model"))
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in result.output and "Traceback" not in result.output


def test_a_layer_the_training_loop_cannot_apply_is_named_and_logged(tmp_path, subset_dir):
    import dataclasses

    from microspeech.models import get_model_spec

    dry_run = get_model_spec(DRY_RUN)

    def build(spec):
        import keras

        model = dry_run.build(spec)
        model.layers[2].activity_regularizer = keras.regularizers.L2(1e-3)
        return model

    spec = dataclasses.replace(dry_run, build=build)
    output = tmp_path / "model"
    with pytest.raises(ValueError, match="activity_regularizer"):
        train_model(spec, dataset=str(subset_dir), output=output, progress=False)
    log = (output / "train.log").read_text().splitlines()
    assert "training stopped: ValueError: layer" in log[-1] and "activity_regularizer" in log[-1]



def test_a_build_that_fails_is_named_before_any_clip_is_read(tmp_path, words, monkeypatch):
    import dataclasses

    from microspeech import data
    from microspeech.models import get_model_spec
    from microspeech.models.registry import ModelFileError

    def build(spec):
        raise RuntimeError("a typo in my layers")

    def unread(*args, **kwargs):
        raise AssertionError("the dataset was read before the model was built")

    monkeypatch.setattr(data, "load_datasets", unread)
    spec = dataclasses.replace(get_model_spec(DRY_RUN), build=build)
    said = r"build\(\) of model 'tflite_micro_speech-test' raised RuntimeError: a typo"
    with pytest.raises(ModelFileError, match=said):
        train_model(spec, dataset=str(words), output=tmp_path / "model", progress=False)
    assert not (tmp_path / "model").exists()


def test_an_empty_output_or_one_inside_the_dataset_is_refused(tmp_path, words):
    result = _train("--dataset", str(words), "--output", "")
    assert result.exit_code == 2 and "--output ''" in " ".join(result.output.split())
    inside = words / "runs" / "model"
    result = _train("--dataset", str(words), "--output", str(inside))
    assert result.exit_code == 2, result.output
    assert f"--output {inside}: inside the dataset {words}" in " ".join(result.output.split())
    assert not (words / "runs").exists()  # the folder the refused run created is gone


def test_an_output_among_the_registered_datasets_is_refused(tmp_path, monkeypatch):
    """A registered name's folder is made under MICROSPEECH_HOME/datasets: an output there (here
    before that folder exists) would become files beside the dataset, so it is refused before
    anything is generated or read."""
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path / "home"))
    inside = tmp_path / "home" / "datasets" / "runs" / "model"
    result = _train("--dataset", "synthetic-tiny", "--output", str(inside))
    assert result.exit_code == 2, result.output
    said = f"--output {inside}: inside the dataset synthetic-tiny (kept in {tmp_path / 'home' / 'datasets'})"
    assert said in " ".join(result.output.split())
    assert not (tmp_path / "home" / "datasets").exists()  # nothing generated, nothing left


@pytest.mark.parametrize("saved", ["none", "by this run", "by an earlier run"])
def test_ctrl_c_says_how_to_go_on(tmp_path, words, monkeypatch, saved):
    """Ctrl-C ended `train` with a blank line and exit status 130; now it says whether a saved
    epoch exists and the command that resumes from it. An earlier run's checkpoint (a fresh run
    removes it only once its data are loaded) is not this run's: its --resume advice resumed the
    other run, or failed on its seed."""
    import microspeech.data as data_package

    output = tmp_path / "model"
    arrays = {"w/0": np.zeros(4, np.float32)}
    if saved == "by an earlier run":
        save_checkpoint(output / "checkpoint", arrays, _state(epoch=3))
        an_hour_ago = time.time() - 3600
        os.utime(output / "checkpoint" / "state.json", (an_hour_ago, an_hour_ago))

    def ctrl_c(*args, **kwargs):
        if saved == "by this run":  # as a run interrupted after its fourth epoch leaves it
            save_checkpoint(output / "checkpoint", arrays, _state(epoch=3))
        raise KeyboardInterrupt

    monkeypatch.setattr(data_package, "load_datasets", ctrl_c)
    result = _train("--dataset", str(words), "--output", str(output), "--seed", "0")
    assert result.exit_code == 130, result.output
    message = " ".join(result.output.split())
    if saved == "by this run":
        expected = f"microspeech train {DRY_RUN} --dataset {words} --seed 0 --output {output} --resume"
        assert f"interrupted: the last saved epoch is 4; continue with: {expected}" in message
    else:
        assert "interrupted: no epoch was saved yet" in message


def test_a_stop_signal_tensorflow_turned_into_its_own_error_still_ends_as_interrupted(
    tmp_path, subset_dir, monkeypatch
):
    # SIGINT while TensorFlow traced the training step came out as a StagingError traceback with
    # status 1, and train.log said "training stopped: StagingError"; `kill` (SIGTERM) had no
    # handler at all: no message, no line in train.log, temporary folders left.
    import signal

    from microspeech import stopping
    from microspeech.training import loop

    monkeypatch.setattr(stopping, "_received", [])

    def stopped_while_tracing(*args, **kwargs):
        stopping._received.append(signal.SIGTERM)  # what stopping's handler records
        raise SystemError("Objects/listobject.c:338: bad argument to internal function")

    monkeypatch.setattr(loop.FastTrainer, "train_epoch", stopped_while_tracing)
    output = tmp_path / "model"
    result = _train("--dataset", str(subset_dir), "--output", str(output), "--seed", "0")
    assert result.exit_code == 143, result.output
    assert "interrupted: no epoch was saved yet" in " ".join(result.output.split())
    last_line = (output / "train.log").read_text().splitlines()[-1]
    assert last_line.endswith("training stopped: interrupted (SIGTERM)")


def test_only_a_refused_calibration_is_told_how_to_calibrate(tmp_path, subset_dir, monkeypatch):
    # Any RuntimeError, one in the third epoch included, said "the trained .keras and .tflite are
    # in X, not calibrated": nothing was trained then.
    from microspeech.training import loop, stream_selection

    def refused(*args, **kwargs):
        raise RuntimeError("Silicon Labs' TFLM cannot run the model")

    monkeypatch.setattr(stream_selection, "calibrate_detection", refused)
    output = tmp_path / "model"
    result = _train("--dataset", str(subset_dir), "--output", str(output), "--seed", "0")
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "cannot run the model; the trained .keras and .tflite are in" in said
    monkeypatch.setattr(loop.FastTrainer, "train_epoch", refused)
    result = _train("--dataset", str(subset_dir), "--output", str(tmp_path / "other"), "--seed", "0")
    assert isinstance(result.exception, RuntimeError) and "not calibrated" not in result.output


def test_a_stop_whose_interrupt_was_swallowed_still_ends_the_run(tmp_path, subset_dir, monkeypatch):
    # In a few of twenty tries a Ctrl-C had no effect: the run trained on and wrote its model.
    import signal

    from microspeech import stopping

    monkeypatch.setattr(stopping, "_received", [signal.SIGINT])  # recorded, its exception lost
    output = tmp_path / "model"
    result = _train("--dataset", str(subset_dir), "--output", str(output), "--seed", "0")
    said = " ".join(result.output.split())
    assert result.exit_code == 130 and "interrupted: no epoch was saved yet" in said, said
    assert not (output / f"{DRY_RUN}.tflite").exists()


def test_a_stop_inside_the_int8_conversion_ends_the_run_before_calibrating(tmp_path, subset_dir, monkeypatch):
    # TFLite's converter returns its model when Ctrl-C lands inside it: the run went on to check
    # parity, calibrate on the stream, write its manifest and say "trained" (exit 0).
    import signal

    from microspeech import stopping
    from microspeech.tflite import convert

    monkeypatch.setattr(stopping, "_received", [])
    real_build = convert.build_tflite

    def interrupted_conversion(*args, **kwargs):
        stopping._received.append(signal.SIGINT)  # recorded by the handler, the exception lost
        return real_build(*args, **kwargs)

    monkeypatch.setattr(convert, "build_tflite", interrupted_conversion)
    output = tmp_path / "model"
    result = _train("--dataset", str(subset_dir), "--output", str(output), "--seed", "0")
    said = " ".join(result.output.split())
    assert result.exit_code == 130 and "interrupted" in said and "trained" not in said, said
    assert not (output / "manifest.json").exists() and not (output / f"{DRY_RUN}.tflite").exists()
    last_line = (output / "train.log").read_text().splitlines()[-1]
    assert last_line.endswith("training stopped: interrupted (SIGINT)")


def test_kill_ends_a_command_as_ctrl_c_does(tmp_path):
    # SIGTERM killed the process where it stood: no finally block ran, no status a shell reads.
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from microspeech.cli import app, main\n"
        "@app.command('wait-for-kill')\n"
        "def wait() -> None:\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(30)\n"
        "    finally:\n"
        "        print('cleaned up', flush=True)\n"
        "sys.argv = ['microspeech', 'wait-for-kill']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr[-2000:]
    assert done.stdout == "cleaned up\n"


def test_resume_on_another_dataset_names_both(tmp_path, words):
    # "written on another version of the dataset (its files or lists changed since)" was said of a
    # different dataset altogether; the checkpoint now records its folders.
    output = tmp_path / "model"
    state = _state(dataset_roots=[str(tmp_path / "elsewhere")])
    save_checkpoint(output / "checkpoint", {"w/0": np.zeros(4, np.float32)}, state)
    result = _train("--dataset", str(words), "--output", str(output), "--resume")
    message = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"written on the dataset {tmp_path / 'elsewhere'}, not {words.resolve()}" in message
    assert f"resume with --dataset {tmp_path / 'elsewhere'}" in message


def test_resume_with_another_budget_says_so(tmp_path, words):
    # One run scored its epochs for 2 FA/h, then for 10, and kept the best across both.
    from microspeech.data import load_datasets
    from microspeech.data.pipeline import dataset_fingerprint
    from microspeech.models import get_model_spec
    from microspeech.training.trainer import resume_settings

    output = tmp_path / "model"
    state = _state(
        dataset_fingerprint=dataset_fingerprint(load_datasets([str(words)])),
        settings=resume_settings(get_model_spec(DRY_RUN)),
    )
    save_checkpoint(output / "checkpoint", {"w/0": np.zeros(4, np.float32)}, state)
    result = _train("--dataset", str(words), "--output", str(output), "--resume", "--max-fa-per-hour", "10")
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "other settings of tflite_micro_speech-test: train.max_fa_per_hour 2.0 (now 10.0)" in message
    # --epochs may change (it extends a run): refused for something else here (the two-word set).
    result = _train("--dataset", str(words), "--output", str(output), "--resume", "--epochs", "7")
    assert result.exit_code == 2 and "other settings" not in result.output, result.output


def test_resume_with_fewer_epochs_than_the_checkpoint_ran_says_so(tmp_path, words):
    # --resume --epochs 2 on a checkpoint of 5 epochs trained nothing and wrote a manifest whose
    # epochs_run (5) exceeded the run's epochs (2).
    from microspeech.data import load_datasets
    from microspeech.data.pipeline import dataset_fingerprint

    output = tmp_path / "model"
    state = _state(dataset_fingerprint=dataset_fingerprint(load_datasets([str(words)])), epoch=4)
    save_checkpoint(output / "checkpoint", {"w/0": np.zeros(4, np.float32)}, state)
    result = _train("--dataset", str(words), "--output", str(output), "--resume", "--epochs", "2")
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"{output / 'checkpoint'} has run 5 epochs, more than the 2 this run allows" in message
    assert "resume with --epochs 5 or more" in message
    # 5 is allowed past this check (refused for something else here: the two-word set).
    result = _train("--dataset", str(words), "--output", str(output), "--resume", "--epochs", "5")
    assert result.exit_code == 2 and "has run 5 epochs" not in result.output, result.output


def test_resume_after_the_layers_were_edited_says_which(tmp_path, words):
    # The spec's settings leave build() out: 16 filters instead of 8 dumped 127 lines of weight
    # values, and another dropout rate resumed into a run of two architectures.
    import dataclasses

    from microspeech.data import load_datasets
    from microspeech.data.pipeline import dataset_fingerprint
    from microspeech.models import get_model_spec
    from microspeech.training.trainer import layer_summary, resume_settings

    spec = get_model_spec(DRY_RUN)
    layers = layer_summary(spec.build_model())
    conv = next(layer for layer in layers if layer["class"] == "Conv2D")
    conv["config"]["filters"] = 16
    output = tmp_path / "model"
    state = _state(
        dataset_fingerprint=dataset_fingerprint(load_datasets([str(words)])),
        settings=resume_settings(spec),
        layers=layers,
    )
    save_checkpoint(output / "checkpoint", {"w/0": np.zeros(4, np.float32)}, state)
    with pytest.raises(ResumeError, match=r"other layers than .*layer \d, Conv2D: filters 16 -> 8"):
        train_model(dataclasses.replace(spec), dataset=str(words), output=output, resume=True, progress=False)


def test_an_empty_output_or_keywords_from_python_or_the_cli_are_refused(tmp_path, words, monkeypatch):
    # train_model(output="") trained into the current folder; --keywords "" trained yes/no.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="--output '': an empty folder name"):
        train_model(DRY_RUN, dataset=str(words), output="", progress=False)
    result = _train("--dataset", str(words), "--keywords", "", "--output", str(tmp_path / "m"))
    assert result.exit_code == 2 and "keywords ''" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["words"]


@pytest.mark.parametrize("options", [{"epochs": 1.5}, {"dataset": 3}, {"dataset": []}])
def test_the_python_api_names_a_bad_argument_before_any_work(tmp_path, options):
    # epochs=1.5 failed inside the epoch loop after the folder was made; a dataset that is no
    # name was "'int' object is not iterable" (None is the default: synthetic, or synthetic-tiny).
    name = next(iter(options))
    with pytest.raises(ValueError, match=name):
        train_model(DRY_RUN, output=tmp_path / "model", progress=False, **options)
    assert not (tmp_path / "model").exists()


def test_the_python_api_defaults_a_dry_run_to_synthetic_tiny(monkeypatch, tmp_path):
    from microspeech.training import trainer

    given = []
    monkeypatch.setattr(
        trainer, "_train_locked", lambda spec, artifacts, dataset, *rest: given.append(dataset)
    )
    train_model(DRY_RUN, output=tmp_path / "dry", progress=False)
    train_model("tflite_micro_speech", output=tmp_path / "full", progress=False)
    assert given == ["synthetic-tiny", "synthetic"]


def test_a_dry_run_without_dataset_trains_on_synthetic_tiny(monkeypatch, tmp_path):
    # The 4,680-clip synthetic set was generated first: minutes, for a dry run the README calls < 1 min.
    from microspeech import training

    given = []

    def record(spec, **options):
        given.append((spec.name, options["dataset"]))
        raise SystemExit(0)

    monkeypatch.setattr(training, "train_model", record)
    for args in (["tflite_micro_speech-test"], ["tflite_micro_speech", "--test"], ["tflite_micro_speech"]):
        result = CliRunner().invoke(app, ["train", *args, "--output", str(tmp_path / "x")])
        assert result.exit_code == 0, result.output
    assert given == [
        ("tflite_micro_speech-test", ["synthetic-tiny"]),
        ("tflite_micro_speech-test", ["synthetic-tiny"]),
        ("tflite_micro_speech", ["synthetic"]),
    ]
