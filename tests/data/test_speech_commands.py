"""The real loaders on the genuine Speech Commands bundles (fixtures subset_dir, test_set_dir)."""

import numpy as np
import pytest

from microspeech.data import Clip, load_dataset
from microspeech.data.splits import hash_split, read_split_lists

pytestmark = pytest.mark.xdist_group("speech_commands_bundles")


def test_subset_layout_uses_official_lists_and_keeps_noise_apart(subset_dir):
    dataset = load_dataset(str(subset_dir))
    assert dataset.layout == "speech_commands"
    # The bundle README's counts: yes 809 train + 107 validation, no 799 + 95, no test clip.
    assert dataset.counts()["yes"] == {"train": 809, "validation": 107, "test": 0}
    assert dataset.counts()["no"] == {"train": 799, "validation": 95, "test": 0}
    assert "_background_noise_" not in dataset.words
    assert len(dataset.noise_paths) == 6
    assert all(path.parent.name == "_background_noise_" for path in dataset.noise_paths)
    assert not dataset.skipped
    listed = read_split_lists(subset_dir)
    for clip in dataset.clips:
        assert clip.split == listed.get(f"{clip.word}/{clip.path.name}", "train")
        assert clip.speaker_id == clip.path.name.split("_nohash_")[0]
    # Listed files follow TensorFlow's hash rule; the lists predate some v0.02 files, so a few
    # unlisted clips of validation speakers sit in train (22 speakers here): faithful, not fixed.
    assert all(hash_split(clip.speaker_id) == "validation" for clip in dataset.split("validation"))
    assert len(dataset.speakers("train") & dataset.speakers("validation")) == 22


def test_subset_clips_read_as_16k_mono_int16(subset_dir):
    dataset = load_dataset(subset_dir)
    clip = dataset.split("validation")[0]
    audio = dataset.read(clip)
    assert audio.dtype == np.int16 and audio.ndim == 1 and 0 < audio.size <= 16000
    assert np.abs(audio.astype(np.int32)).max() > 100  # a real recording, not silence
    noise = dataset.read_noise(dataset.noise_paths[0])
    assert noise.dtype == np.int16 and noise.size > 16000 * 10


def test_test_set_layout_words_from_folders_and_names_speakers_from_names(test_set_dir):
    dataset = load_dataset(str(test_set_dir))
    assert dataset.layout == "test_set"
    assert {clip.split for clip in dataset.clips} == {"test"}
    commands = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    # _unknown_/<word>_<speaker>_nohash_<n>.wav holds 25 other words, each its own word: a model
    # whose keyword is one of them ("happy") scores those clips as its keyword.
    others = set(dataset.words) - {*commands, "_silence_"}
    assert len(others) == 25 and {"happy", "marvin", "sheila", "backward"} <= others
    assert "_unknown_" not in dataset.words
    counts = dataset.counts()
    assert counts["yes"]["test"] == 232 and counts["no"]["test"] == 224
    assert sum(counts[word]["test"] for word in others) == 231 and counts["_silence_"]["test"] == 202
    unknown = [clip for clip in dataset.clips if clip.path.parent.name == "_unknown_"]
    assert {clip.word for clip in unknown} == others
    assert all(clip.path.name.startswith(f"{clip.word}_") for clip in unknown)
    by_name = {clip.path.name: clip for clip in unknown}
    some = next(name for name in by_name if name.startswith("backward_"))
    assert by_name[some].speaker_id == some.removeprefix("backward_").split("_nohash_")[0]
    assert all(len(clip.speaker_id) == 8 for clip in unknown)
    assert dataset.noise_paths == []
    silence = dataset.read(next(clip for clip in dataset.clips if clip.word == "_silence_"))
    assert silence.size == 16000 and np.any(silence != 0)


def test_test_set_clips_are_disjoint_from_subset_speakers(subset_dir, test_set_dir):
    train = load_dataset(subset_dir)
    test = load_dataset(test_set_dir)
    assert not train.speakers() & test.speakers()


def test_clip_is_frozen_and_checks_split(tmp_path):
    clip = Clip(tmp_path / "a.wav", "yes", "abc", "train")
    with pytest.raises(AttributeError):
        clip.word = "no"
    with pytest.raises(ValueError, match="split"):
        Clip(tmp_path / "a.wav", "yes", "abc", "training")


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="speech_commands_v2"):
        load_dataset("no_such_dataset_or_folder")


def test_hash_rule_reproduces_every_official_list_entry(subset_dir):
    # The official lists were made with TensorFlow's which_set: our rule must agree on all ~21k.
    listed = read_split_lists(subset_dir)
    assert len(listed) > 20000
    for entry, split in listed.items():
        speaker = entry.split("/", 1)[1].split("_nohash_")[0]
        assert hash_split(speaker) == split, entry
