"""User folders and bad input: each file is converted as documented or skipped by name."""

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from microspeech.data import load_dataset
from microspeech.data.folder import index_folder
from microspeech.data.splits import hash_split, speaker_from_filename, strip_audio_extensions, word_prefix
from microspeech.data.verify import verify_dataset

RATE = 16000


def _tone(seconds: float, rate: int = RATE, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * frequency * t)


@pytest.fixture()
def messy_folder(tmp_path):
    root = tmp_path / "mine"
    (root / "yes").mkdir(parents=True)
    (root / "no").mkdir()
    (root / "_background_noise_").mkdir()
    sf.write(root / "yes" / "alice_nohash_0.wav", _tone(1.0), RATE, subtype="PCM_16")
    sf.write(root / "yes" / "alice_nohash_1.wav", _tone(0.6), RATE, subtype="PCM_24")
    sf.write(root / "yes" / "bob_nohash_0.wav", np.stack([_tone(1.0, 44100)] * 2, 1), 44100, subtype="PCM_16")
    sf.write(root / "yes" / "bob_nohash_1.wav", _tone(0.8, 8000), 8000, subtype="PCM_U8")
    sf.write(root / "yes" / "carol_nohash_0.wav", _tone(0.9), RATE, subtype="PCM_32")
    sf.write(root / "yes" / "carol_nohash_1.wav", _tone(0.9), RATE, subtype="FLOAT")
    # 2.5 s of near-silence with the word (a loud tone) from 1.5 s to 1.9 s.
    long = np.full(int(2.5 * RATE), 1e-4)
    long[int(1.5 * RATE) : int(1.9 * RATE)] = _tone(0.4)
    sf.write(root / "yes" / "dave_nohash_0.wav", long, RATE, subtype="PCM_16")
    (root / "yes" / "empty_nohash_0.wav").write_bytes(b"")
    (root / "yes" / "notes.txt").write_text("not audio")
    (root / "yes" / "garbage_nohash_0.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 8)
    full = root / "yes" / "erin_nohash_0.wav"
    sf.write(full, _tone(1.0), RATE, subtype="PCM_16")
    (root / "yes" / "erin_nohash_1.wav").write_bytes(full.read_bytes()[:20044])  # header + 10,000 samples
    sf.write(root / "no" / "plain_name.flac", _tone(0.7), RATE)
    sf.write(root / "no" / "silent_nohash_0.wav", np.zeros(RATE), RATE, subtype="PCM_16")
    sf.write(root / "_background_noise_" / "hum.wav", _tone(5.0, frequency=50), RATE, subtype="PCM_16")
    (root / "README.md").write_text("my keywords")
    (root / "_background_noise_" / "README.md").write_text("as in the official archive")
    (root / "yes" / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def test_bad_files_are_skipped_by_name_and_counted(messy_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="microspeech.data"):
        dataset = load_dataset(str(messy_folder))
    assert dataset.layout == "folder"
    skipped = {issue.path.name: issue.problem for issue in dataset.skipped}
    assert set(skipped) == {"empty_nohash_0.wav", "notes.txt", "garbage_nohash_0.wav"}
    assert "empty" in skipped["empty_nohash_0.wav"]
    assert "not an audio file" in skipped["notes.txt"]
    for name in skipped:
        assert any(name in record.getMessage() for record in caplog.records)
    assert any("3 unusable file(s) skipped" in record.getMessage() for record in caplog.records)
    assert {clip.path.name for clip in dataset.clips}.isdisjoint(skipped)
    assert len(dataset.clips) == 11 and dataset.words == ["no", "yes"]
    assert [path.name for path in dataset.noise_paths] == ["hum.wav"]


def test_conversions_are_documented_and_applied(messy_folder):
    dataset = index_folder(messy_folder)
    notes = {issue.path.name: issue.problem for issue in dataset.converted}
    assert "resampled from 44100 Hz" in notes["bob_nohash_0.wav"]
    assert "downmixed from 2 channels" in notes["bob_nohash_0.wav"]
    assert "PCM_U8" in notes["bob_nohash_1.wav"] and "resampled from 8000 Hz" in notes["bob_nohash_1.wav"]
    assert "PCM_24" in notes["alice_nohash_1.wav"] and "FLOAT" in notes["carol_nohash_1.wav"]
    assert "2.50 s long" in notes["dave_nohash_0.wav"]
    assert "truncated: 10000 of 16000" in notes["erin_nohash_1.wav"]
    assert "alice_nohash_0.wav" not in notes
    clips = {clip.path.name: clip for clip in dataset.clips}
    expected_sizes = {"bob_nohash_0.wav": 16000, "bob_nohash_1.wav": 12800, "carol_nohash_0.wav": 14400}
    expected_sizes |= {"carol_nohash_1.wav": 14400, "erin_nohash_1.wav": 10000}
    for name, expected in expected_sizes.items():
        audio = dataset.read(clips[name])
        assert audio.dtype == np.int16 and audio.ndim == 1 and audio.size == expected, name
        assert 9000 < np.abs(audio.astype(np.int32)).max() < 10500, name  # 0.3 full scale survived
    long = dataset.read(clips["dave_nohash_0.wav"])
    # The whole 0.4 s tone is inside the window (a sine spends 2/3 of its time above half its peak).
    assert long.size == 16000 and np.count_nonzero(np.abs(long) > 5000) > 4200


def test_speakers_and_speaker_aware_hash_split(messy_folder):
    dataset = index_folder(messy_folder)
    clips = {clip.path.name: clip for clip in dataset.clips}
    assert clips["plain_name.flac"].speaker_id == "plain_name"
    assert clips["bob_nohash_1.wav"].speaker_id == "bob"
    for clip in dataset.clips:
        assert clip.split == hash_split(clip.speaker_id)
    by_speaker = {}
    for clip in dataset.clips:
        by_speaker.setdefault(clip.speaker_id, set()).add(clip.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())


def test_split_lists_in_a_user_folder_win_over_the_hash(messy_folder):
    (messy_folder / "validation_list.txt").write_text("yes/alice_nohash_0.wav\nyes/absent_nohash_0.wav\n")
    (messy_folder / "testing_list.txt").write_text("no/plain_name.flac\n")
    dataset = index_folder(messy_folder)
    splits = {clip.path.name: clip.split for clip in dataset.clips}
    assert splits["alice_nohash_0.wav"] == "validation" and splits["plain_name.flac"] == "test"
    assert splits["alice_nohash_1.wav"] == "train"  # unlisted: train, even for a listed speaker


def test_verify_lists_every_unusable_file(messy_folder):
    dataset = index_folder(messy_folder)
    problems = {issue.path.name: issue.problem for issue in verify_dataset(dataset)}
    assert set(problems) == {"empty_nohash_0.wav", "notes.txt", "garbage_nohash_0.wav", "silent_nohash_0.wav"}
    assert "zero" in problems["silent_nohash_0.wav"]


def test_tensorflow_hash_rule_and_name_parsing():
    # Values from TensorFlow's which_set (sha1 of the speaker, 2**27 - 1 buckets, 10 % / 10 %).
    speakers = ["0a196374", "439c84f4", "099d52ad"]
    assert [hash_split(s) for s in speakers] == ["train", "validation", "validation"]
    assert strip_audio_extensions("backward_0c540988_nohash_0.wav.wav") == "backward_0c540988_nohash_0"
    assert speaker_from_filename("backward_0c540988_nohash_0.wav.wav", word_prefixed=True) == "0c540988"
    assert speaker_from_filename("0c540988_nohash_3.wav") == "0c540988"
    assert speaker_from_filename("my recording.flac") == "my recording"
    assert word_prefix("backward_0c540988_nohash_0.wav.wav") == "backward"
    assert word_prefix("0c540988_nohash_3.wav") is None and word_prefix("my recording.flac") is None


def test_a_folder_without_audio_is_a_clear_error(tmp_path):
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="no usable audio clips"):
        index_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="not_here"):
        index_folder(tmp_path / "not_here")


def test_a_dataset_built_by_hand_takes_string_paths(subset_dir):
    # str paths (a user's own list of clips) failed late, deep in the feature pipeline.
    from microspeech.data import AudioDataset
    from microspeech.data.clips import Clip
    from microspeech.data.pipeline import make_eval_set
    from microspeech.frontend import FrontendSettings

    indexed = load_dataset(subset_dir)
    clips = [Clip(str(c.path), c.word, c.speaker_id, c.split) for c in indexed.split("validation")[:30]]
    by_hand = AudioDataset("mine", str(subset_dir), clips, noise_paths=[str(p) for p in indexed.noise_paths])
    assert by_hand.root == subset_dir and all(isinstance(clip.path, Path) for clip in by_hand.clips)
    classes = ["yes", "no", "_unknown_", "_silence_"]
    made = make_eval_set(by_hand, "validation", classes, FrontendSettings(), seed=0)
    assert made.features.shape[1:] == (49, 40) and len(made.labels) > 0
    with pytest.raises(ValueError, match="clip path None: expected a file path"):
        Clip(None, "yes", "a", "train")  # type: ignore[arg-type]


def _copy_clip(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


def test_a_speaker_is_one_speaker_in_every_word_folder_and_unicode_form(subset_dir, tmp_path):
    # An _unknown_ folder of the user's read mary_ann_nohash_0.wav as the word "mary" said by
    # "ann", and "André" composed (NFC) and decomposed (NFD, as macOS stores it) were two people:
    # either way one speaker could land in train and in test.
    import unicodedata

    clip = next(iter(sorted((subset_dir / "yes").glob("*.wav"))))
    names = ["mary_ann", "office_desk", "kid_03", "john_doe", "zo\u00eb_x"]
    for word in ("yes", "no", "_unknown_"):
        for index, name in enumerate(names):
            form = "NFD" if (word == "no") != bool(index % 2) else "NFC"
            _copy_clip(clip, tmp_path / "mine" / word / unicodedata.normalize(form, f"{name}_nohash_0.wav"))
    (tmp_path / "mine" / "_background_noise_").mkdir()
    clips = load_dataset(tmp_path / "mine").clips
    for name in names:
        theirs = [c for c in clips if unicodedata.normalize("NFC", c.path.name).startswith(f"{name}_nohash")]
        assert len(theirs) == 3 and {c.speaker_id for c in theirs} == {name}
        assert len({c.split for c in theirs}) == 1
    from microspeech.data.folder import spoken_word

    assert {spoken_word(c) for c in clips if c.word == "_unknown_"} == {"_unknown_"}


def test_unknown_clips_named_as_the_test_sets_keep_their_speaker(subset_dir, tmp_path):
    # Other Speech Commands words gathered into _unknown_ as <word>_<speaker>_nohash_<n>.wav: the
    # word comes off where the rest is a speaker of another folder or follows two words.
    from microspeech.data.folder import spoken_word

    clip = sorted((subset_dir / "yes").glob("*.wav"))[0]
    speakers = [f"{index:08x}" for index in range(12)]
    for speaker in speakers:
        _copy_clip(clip, tmp_path / "mine" / "yes" / f"{speaker}_nohash_0.wav")
        _copy_clip(clip, tmp_path / "mine" / "_unknown_" / f"backward_{speaker}_nohash_0.wav")
    for word in ("cat", "dog"):  # a speaker only _unknown_ has, under two words
        _copy_clip(clip, tmp_path / "mine" / "_unknown_" / f"{word}_feedf00d_nohash_0.wav")
    # mary_eve is a speaker of yes/ as is eve: her _unknown_ clip is hers, not eve's.
    for name in ("mary_eve", "eve"):
        _copy_clip(clip, tmp_path / "mine" / "yes" / f"{name}_nohash_0.wav")
    _copy_clip(clip, tmp_path / "mine" / "_unknown_" / "mary_eve_nohash_1.wav")
    speakers.append("mary_eve")
    (tmp_path / "mine" / "_background_noise_").mkdir()
    clips = load_dataset(tmp_path / "mine").clips
    unknown = [c for c in clips if c.path.parent.name == "_unknown_"]
    assert {c.speaker_id for c in unknown} == {*speakers, "feedf00d"}
    # The word taken off is the clip's word; mary_eve's clip says nothing more than _unknown_.
    said = {"backward", "cat", "dog", "_unknown_"}
    assert {c.word for c in unknown} == {spoken_word(c) for c in unknown} == said
    split_of = {c.speaker_id: c.split for c in clips if c.word == "yes"}
    assert all(c.split == split_of[c.speaker_id] for c in unknown if c.speaker_id in split_of)
    assert len({c.split for c in unknown if c.speaker_id == "feedf00d"}) == 1


def test_a_split_list_saved_with_a_byte_order_mark_names_its_first_clip(subset_dir, tmp_path):
    root = tmp_path / "listed"
    clips = sorted((subset_dir / "yes").glob("*.wav"))[:4]
    for clip in clips:
        _copy_clip(clip, root / "yes" / clip.name)
    listed = [f"yes/{clip.name}" for clip in clips[:2]]
    (root / "validation_list.txt").write_text("\ufeff" + "\r\n".join(listed), encoding="utf-8")
    splits = {c.path.name: c.split for c in load_dataset(root).clips}
    assert [splits[clip.name] for clip in clips] == ["validation", "validation", "train", "train"]


def test_what_a_folder_holds_but_cannot_use_is_named(subset_dir, tmp_path):
    # A recording at the root (or a word folder given as the dataset) was ignored without a word,
    # an mp3 was "not an audio file" though features reads it, and a noise scrap passed verify
    # only for train to refuse it after every clip was read.
    clip = sorted((subset_dir / "yes").glob("*.wav"))[0]
    root = tmp_path / "mine"
    for index in range(3):
        _copy_clip(clip, root / "yes" / f"s{index}_nohash_0.wav")
    _copy_clip(clip, root / "loose_nohash_0.wav")
    (root / "yes" / "song.mp3").write_bytes(b"ID3")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "scrap.wav", np.full(1000, 500, np.int16), 16000)
    dataset = load_dataset(root)
    problems = {issue.path.name: issue.problem for issue in dataset.skipped}
    assert problems["loose_nohash_0.wav"].startswith("an audio file outside any word folder")
    assert problems["song.mp3"].startswith("a .mp3 file; datasets take .wav or .flac clips")
    assert problems["scrap.wav"] == "shorter than 0.25 s: too short for background noise"
    assert dataset.noise_paths == [] and len(dataset.clips) == 3
    # With no usable clip at all the error lists what was skipped, as verify would.
    only_loose = tmp_path / "loose"
    _copy_clip(clip, only_loose / "a_nohash_0.wav")
    said = r"1 file\(s\) skipped: a_nohash_0.wav: an audio file outside any word"
    with pytest.raises(ValueError, match=said):
        load_dataset(only_loose)


def test_a_file_name_that_is_not_utf8_is_read_like_any_other(subset_dir, tmp_path):
    # soundfile encodes a str path strictly, and the split hash, the dataset fingerprint and the
    # clip bank's key encoded names as UTF-8: one such name (Latin-1 bytes from an old archive)
    # stopped the whole dataset with "surrogates not allowed", naming no file.
    import os

    from microspeech.audio import decode_audio
    from microspeech.data.clip_bank import bank_store
    from microspeech.data.pipeline import dataset_fingerprint
    from microspeech.files import write_text_atomic

    clip = next(iter(sorted((subset_dir / "yes").glob("*.wav"))))
    odd = os.fsdecode(b"caf\xe9_nohash_0.wav")
    root = tmp_path / os.fsdecode(b"d\xe9mo")  # the dataset's own folder too (train.log, summary.txt)
    for word in ("yes", "no"):
        _copy_clip(clip, root / word / odd)
        _copy_clip(clip, root / word / "plain_nohash_0.wav")
    dataset = load_dataset(root)
    written = write_text_atomic(tmp_path / "summary.txt", f"dataset: {dataset.root}\n")
    assert written.read_bytes() == b"dataset: " + os.fsencode(root) + b"\n"
    odd_clips = [c for c in dataset.clips if c.path.name == odd]
    assert len(odd_clips) == 2 and len({c.split for c in odd_clips}) == 1
    assert np.array_equal(decode_audio(odd_clips[0].path).samples, decode_audio(clip).samples)
    assert dataset_fingerprint(dataset) and bank_store(tmp_path, [c.path for c in odd_clips], 16000, None)
    # TensorFlow's which_set hashes a name's bytes: UTF-8 for a UTF-8 name, its own bytes otherwise.
    import hashlib

    def which_set(name: bytes) -> str:
        percentage = (int(hashlib.sha1(name).hexdigest(), 16) % 2**27) * (100.0 / (2**27 - 1))
        return "validation" if percentage < 10 else "test" if percentage < 20 else "train"

    names = [b"caf\xc3\xa9", b"caf\xe9", b"0a196374", b"439c84f4"] + [b"x%d\xff" % n for n in range(40)]
    assert [hash_split(os.fsdecode(name)) for name in names] == [which_set(name) for name in names]
