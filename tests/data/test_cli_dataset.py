"""`microspeech dataset ...` end to end through the Typer app."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from microspeech.cli import app

runner = CliRunner()


@pytest.mark.xdist_group("speech_commands_bundles")
def test_info_prints_counts_speakers_and_noise(subset_dir):
    result = runner.invoke(app, ["dataset", "info", str(subset_dir)])
    assert result.exit_code == 0, result.output
    assert "speech_commands layout" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ yes "))
    assert [cell.strip() for cell in row.split("│")[2:6]] == ["809", "107", "0", "916"]
    assert "background noise: 6 file(s)" in result.output
    assert "speakers in train and in validation/test: 22" in result.output


def test_info_says_when_file_names_do_not_say_the_speaker(tmp_path):
    # alice_1.wav and alice_2.wav are two "speakers" to the hash split: one person's clips could
    # land in train and in test while info said "speakers in train and in validation/test: 0".
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        for index in range(3):
            tone = 0.2 * np.sin(np.arange(16000) / (3 + index))
            sf.write(tmp_path / word / f"alice_{index}.wav", tone, 16000, subtype="PCM_16")
    result = runner.invoke(app, ["dataset", "info", str(tmp_path)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "6 file name(s) without _nohash_ (e.g. alice_0.wav): each is a speaker of its own" in result.output
    for word in ("yes", "no"):
        for index in range(3):
            (tmp_path / word / f"alice_{index}.wav").rename(tmp_path / word / f"alice_nohash_{index}.wav")
    named = runner.invoke(app, ["dataset", "info", str(tmp_path)], terminal_width=300)
    assert named.exit_code == 0 and "without _nohash_" not in named.output


def test_verify_lists_each_unusable_file_and_fails(tmp_path, caplog):
    (tmp_path / "yes").mkdir()
    sf.write(tmp_path / "yes" / "a_nohash_0.wav", 0.2 * np.sin(np.arange(16000) / 3), 16000, subtype="PCM_16")
    sf.write(tmp_path / "yes" / "b_nohash_0.wav", np.zeros(8000), 16000, subtype="PCM_16")
    (tmp_path / "yes" / "c_nohash_0.wav").write_bytes(b"")
    result = runner.invoke(app, ["dataset", "verify", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 1
    assert "2 unusable file(s)" in result.output
    assert "c_nohash_0.wav" in result.output and "empty file" in result.output
    assert "b_nohash_0.wav" in result.output and "all samples are zero" in result.output
    assert "a_nohash_0.wav" not in result.output.split("unusable")[1]
    # Listed once: the indexer's own warnings of skipped files were printed before the list.
    assert not [record for record in caplog.records if "c_nohash_0.wav" in record.getMessage()]
    # A float file of NaNs: unusable, and not also "converted from FLOAT samples".
    sf.write(tmp_path / "yes" / "d_nohash_0.wav", np.full(16000, np.nan), 16000, subtype="FLOAT")
    result = runner.invoke(app, ["dataset", "verify", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 1 and "3 unusable file(s)" in result.output
    assert result.output.count("d_nohash_0.wav") == 1 and "NaN" in result.output


@pytest.mark.parametrize("manifest", ["{}", "", '{"config": {}, "engines": ["espeak'])
def test_a_foreign_or_cut_synthetic_manifest_is_named(tmp_path, subset_dir, manifest):
    # `dataset info` raised KeyError/JSONDecodeError; `synth --output` named no file.
    (tmp_path / "yes").mkdir()
    for clip in sorted((subset_dir / "yes").glob("*.wav"))[:3]:
        (tmp_path / "yes" / clip.name).write_bytes(clip.read_bytes())
    (tmp_path / "synthetic.json").write_text(manifest)
    (tmp_path / ".microspeech-complete").write_text("")
    for command in (["dataset", "info", str(tmp_path)], ["dataset", "synth", "--output", str(tmp_path)]):
        result = runner.invoke(app, command, terminal_width=300)
        assert result.exit_code == 2, result.output
        assert f"{tmp_path / 'synthetic.json'}: not a " in result.output
        assert "Traceback" not in result.output


def test_info_offline_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path))
    result = runner.invoke(app, ["dataset", "info", "speech_commands_v2"], terminal_width=300)
    assert result.exit_code == 2
    assert "--dataset PATH" in result.output and "synthetic" in result.output


def test_info_without_download_does_not_generate_a_synthetic_set(tmp_path, monkeypatch):
    # --no-download (info's default) generated "synthetic" with eSpeak all the same (minutes).
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path))
    result = runner.invoke(app, ["dataset", "info", "synthetic-tiny"], terminal_width=300)
    assert result.exit_code == 2 and "'synthetic-tiny' has not been generated yet" in result.output
    assert not (tmp_path / "datasets").exists() or not any((tmp_path / "datasets").iterdir())
    made = runner.invoke(app, ["dataset", "info", "synthetic-tiny", "--download"], terminal_width=300)
    assert made.exit_code == 0, made.output
    assert runner.invoke(app, ["dataset", "info", "synthetic-tiny"], terminal_width=300).exit_code == 0


def test_offline_error_is_one_line_off_a_terminal_whatever_the_path_length(tmp_path):
    """CI logs and pipes: the message is not hard-wrapped, so no path length can split an option name."""
    home = tmp_path.joinpath(*["a_very_long_user_name_and_temporary_folder"] * 6, "microspeech home")
    home.mkdir(parents=True)
    command = [sys.executable, "-c", "from microspeech.cli import main; main()"]
    result = subprocess.run(
        [*command, "dataset", "info", "speech_commands_v2"],
        env={**os.environ, "MICROSPEECH_HOME": str(home), "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    assert "--dataset PATH" in error_lines[0] and "synthetic" in error_lines[0]
    assert len(error_lines[0]) > 80


def test_download_rejects_unknown_names():
    result = runner.invoke(app, ["dataset", "download", "imagenet"], terminal_width=300)
    assert result.exit_code == 2 and "speech_commands_v2" in result.output


@pytest.mark.xdist_group("synthetic")
def test_synth_reports_time_then_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path))
    arguments = ["dataset", "synth", "--preset", "synthetic-tiny", "--train-per-word", "1"]
    arguments += ["--test-per-word", "0"]
    first = runner.invoke(app, arguments, terminal_width=200)
    assert first.exit_code == 0, first.output
    assert "generated 70 clips in" in first.output and "clips/s" in first.output
    second = runner.invoke(app, arguments, terminal_width=200)
    assert "already generated (cached)" in second.output


def test_an_archive_that_does_not_extract_is_one_line(tmp_path, monkeypatch):
    # A verified download whose extraction failed (a full disk, say) ended in a traceback.
    import microspeech.data.speech_commands as speech_commands

    garbage = tmp_path / "archive.tar.gz"
    garbage.write_bytes(bytes(range(256)) * 20)
    monkeypatch.setenv("MICROSPEECH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(speech_commands, "download_file", lambda *args, **kwargs: garbage)  # no internet here
    result = runner.invoke(app, ["dataset", "download", "speech_commands_test_set_v0.02"], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert f"{garbage}: extraction failed" in result.output and "nothing was kept" in result.output


def test_the_test_sets_silence_recordings_are_not_counted_as_speakers(test_set_dir):
    # 332 speakers: each _silence_/NNNN.wav counted as one; the dev bundle has 130.
    result = runner.invoke(app, ["dataset", "info", str(test_set_dir)], terminal_width=200)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ speakers "))
    assert [cell.strip() for cell in row.split("│")[2:6]] == ["0", "0", "130", "130"]
    # Why every clip is a test clip: a user's folder with the same two folders is read the same way.
    said = " ".join(result.output.split())
    why = "_unknown_/ and _silence_/ without _background_noise_/: the official test-set archive's layout"
    assert why in said
    assert "231 clip(s) of _unknown_/ are counted under the word their name starts with" in said


def test_verify_still_warns_of_a_split_list_pointing_outside_the_folder(tmp_path, caplog):
    # Quieting the indexer's skip warnings for verify silenced this one too.
    (tmp_path / "yes").mkdir()
    sf.write(tmp_path / "yes" / "a_nohash_0.wav", 0.2 * np.sin(np.arange(16000) / 3), 16000, subtype="PCM_16")
    (tmp_path / "validation_list.txt").write_text("../outside/x.wav\n")
    runner.invoke(app, ["dataset", "verify", str(tmp_path)], terminal_width=200)
    assert any("outside the dataset folder" in record.getMessage() for record in caplog.records)
