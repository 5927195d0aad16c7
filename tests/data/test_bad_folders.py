"""Dataset folders that cannot be read as they are: named, never a traceback or a silent empty split."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from microspeech.audio import write_wav
from microspeech.data import load_dataset
from microspeech.data.pipeline import DatasetError, check_dataset
from microspeech.models import get_model_spec

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _words(root: Path, words=("yes", "no"), speakers=4) -> Path:
    for word in words:
        for i in range(speakers):
            write_wav(root / word / f"s{i}_nohash_0.wav", np.full(8000, 1000 * (i + 1), np.int16))
    return root


def _cli_unprivileged(prefix: list[str], home: Path, *args: str) -> subprocess.CompletedProcess:
    """`microspeech ARGS` in a child process that file permissions apply to (see `unprivileged`)."""
    return subprocess.run(
        [*prefix, sys.executable, "-c", "from microspeech.cli import main; main()", *args],
        env={**os.environ, "PYTHONPATH": SRC, "MICROSPEECH_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unreadable_word_folder_is_named_not_a_traceback(unprivileged, tmp_path):
    root = _words(tmp_path / "data")
    (root / "no").chmod(0o000)
    try:
        result = _cli_unprivileged(unprivileged, tmp_path / "home", "dataset", "info", str(root))
    finally:
        (root / "no").chmod(0o755)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert f"{root / 'no'}: the folder cannot be read (Permission denied)" in " ".join(output.split())
    assert "skipped: 1 unusable" in output


def test_an_unreadable_clip_is_said_to_be_unreadable(unprivileged, tmp_path):
    # libsndfile's words for it were "not a readable audio file (... System error.)".
    root = _words(tmp_path / "data")
    clip = sorted((root / "yes").glob("*.wav"))[0]
    clip.chmod(0o000)
    try:
        result = _cli_unprivileged(unprivileged, tmp_path / "home", "dataset", "verify", str(root))
    finally:
        clip.chmod(0o644)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert (
        f"{clip.name}: permission denied (the file is not readable)" in output
        and "System error" not in output
    )


def test_split_list_entries_that_match_nothing_are_counted_with_an_example(tmp_path, caplog):
    root = _words(tmp_path / "data", speakers=6)
    (root / "validation_list.txt").write_text("yes/s0_nohash_0.wav\nno/s0_nohash_0.wav\n")
    outside = ["../elsewhere/yes/x_nohash_0.wav", "/etc/yes/y_nohash_0.wav"]
    (root / "testing_list.txt").write_text("\n".join([*outside, "yes/gone_nohash_0.wav"]) + "\n")
    with caplog.at_level(logging.WARNING, logger="microspeech"):
        dataset = load_dataset(str(root))
    assert not dataset.split("test") and len(dataset.split("validation")) == 2
    note = dataset.split_notes["test"]
    assert note.startswith(f"{root / 'testing_list.txt'}: of its 3 entries, 2 point outside")
    assert "'../elsewhere/yes/x_nohash_0.wav'" in note and "1 name no usable clip" in note
    assert "'yes/gone_nohash_0.wav'" in note
    assert "validation" not in dataset.split_notes  # every entry found
    assert note in caplog.text


def test_an_empty_validation_split_is_refused_with_its_list_named(tmp_path):
    root = _words(tmp_path / "data", words=("yes", "no", "cat"), speakers=6)
    write_wav(root / "_background_noise_" / "white_noise.wav", np.full(16000, 100, np.int16))
    (root / "validation_list.txt").write_text("yes/nobody_nohash_0.wav\n")
    dataset = load_dataset(str(root))
    target = get_model_spec("tflite_micro_speech-test").training_target()
    with pytest.raises(DatasetError, match=r"validation_list\.txt: of its 1 entries, 1 name no usable clip"):
        check_dataset(dataset, target)


def test_an_unreadable_split_list_is_named(tmp_path):
    root = _words(tmp_path / "data")
    (root / "testing_list.txt").mkdir()  # a folder where the list is expected: unreadable for anyone
    (root / "validation_list.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match=r"validation_list\.txt: cannot read the split list"):
        load_dataset(str(root))


def test_an_empty_dataset_name_is_refused_not_the_current_folder():
    # Path("") is ".": the current folder was indexed as a dataset.
    from microspeech.data import load_dataset

    for name in ("", "  "):
        with pytest.raises(ValueError, match="an empty dataset name"):
            load_dataset(name)
