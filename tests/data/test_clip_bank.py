"""The clip bank: filled in place, kept on disk once and memory-mapped by later runs."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from microspeech.data import load_dataset
from microspeech.data.clip_bank import KEPT_STORES, ClipBank, bank_store, trim
from microspeech.data.pipeline import TrainingPipeline
from microspeech.files import COMPLETE_MARKER
from microspeech.models import get_model_spec

pytestmark = pytest.mark.xdist_group("pipeline")


@pytest.fixture(scope="module")
def subset(subset_dir):
    return load_dataset(str(subset_dir))


def _clips(subset, count=40):
    return [c for c in subset.split("train") if c.word in ("yes", "left")][:count]


def test_in_memory_bank_holds_the_trimmed_clips_back_to_back(subset):
    clips = _clips(subset)
    bank = ClipBank.read(subset.read, clips, 16000, 20.0)
    assert len(bank) == len(clips)
    assert bank.audio.dtype == np.int16 and len(bank.audio) == bank.lengths.sum()
    assert np.array_equal(bank.starts, np.concatenate([[0], np.cumsum(bank.lengths)[:-1]]))
    for i, clip in enumerate(clips):
        expected = trim(subset.read(clip), 20.0)[:16000]
        assert np.array_equal(bank.audio[bank.starts[i] : bank.starts[i] + bank.lengths[i]], expected)
    assert (bank.levels > 0).all()


def test_a_store_is_written_once_then_mapped_without_reading(subset, tmp_path):
    clips = _clips(subset)
    store = bank_store(tmp_path, (c.path for c in clips), 16000, 20.0)
    in_memory = ClipBank.read(subset.read, clips, 16000, 20.0)
    written = ClipBank.read(subset.read, clips, 16000, 20.0, store=store)
    assert (store / COMPLETE_MARKER).exists() and not store.with_name(store.name + ".partial").exists()
    assert os.path.getsize(store / "audio.int16") == 2 * in_memory.lengths.sum()  # trimmed to its content

    def must_not_read(_clip):
        raise AssertionError("a complete store is mapped, not decoded again")

    mapped = ClipBank.read(must_not_read, clips, 16000, 20.0, store=store)
    for bank in (written, mapped):
        assert np.array_equal(bank.audio, in_memory.audio)
        assert np.array_equal(bank.starts, in_memory.starts) and np.array_equal(
            bank.lengths, in_memory.lengths
        )
        assert np.allclose(bank.levels, in_memory.levels)
    assert not mapped.audio.flags.writeable  # read-only map: nothing can corrupt the store


def test_the_store_key_follows_the_files_and_the_reading(subset, tmp_path):
    clips = _clips(subset, 5)
    copies = []
    for clip in clips:
        copy = tmp_path / "copies" / clip.path.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(clip.path, copy)
        copies.append(copy)
    key = bank_store(tmp_path, copies, 16000, 20.0)
    assert bank_store(tmp_path, copies, 16000, 20.0) == key
    assert bank_store(tmp_path, copies, 16000, 30.0) != key  # another trim
    assert bank_store(tmp_path, copies, 8000, 20.0) != key  # another length
    assert bank_store(tmp_path, copies[:-1], 16000, 20.0) != key  # other clips
    os.utime(copies[0], ns=(1, 1))  # a file replaced in place
    assert bank_store(tmp_path, copies, 16000, 20.0) != key


def test_an_interrupted_fill_leaves_no_store_behind(subset, tmp_path):
    clips = _clips(subset, 10)
    store = bank_store(tmp_path, (c.path for c in clips), 16000, 20.0)

    def failing(clip):
        if clip is clips[6]:
            raise KeyboardInterrupt
        return subset.read(clip)

    with pytest.raises(KeyboardInterrupt):
        ClipBank.read(failing, clips, 16000, 20.0, store=store)
    assert not store.exists() and not store.with_name(store.name + ".partial").exists()
    bank = ClipBank.read(subset.read, clips, 16000, 20.0, store=store)  # the next run builds it whole
    assert len(bank) == len(clips) and (store / COMPLETE_MARKER).exists()


def test_only_the_most_recently_used_stores_are_kept(subset, tmp_path):
    clips = _clips(subset, 3)
    stores = []
    for length in range(8000, 8000 + KEPT_STORES + 2):
        store = bank_store(tmp_path, (c.path for c in clips), length, 20.0)
        ClipBank.read(subset.read, clips, length, 20.0, store=store)
        os.utime(store, (len(stores), len(stores)))  # distinct, increasing use times
        stores.append(store)
    ClipBank.read(
        subset.read,
        clips,
        8000 + KEPT_STORES + 2,
        20.0,
        store=bank_store(tmp_path, (c.path for c in clips), 8000 + KEPT_STORES + 2, 20.0),
    )
    kept = sorted(p for p in tmp_path.iterdir() if (p / COMPLETE_MARKER).exists())
    assert len(kept) == KEPT_STORES


def test_a_build_killed_mid_write_is_removed_by_the_next_run_unless_one_is_building_it(subset, tmp_path):
    # SIGKILL during the first decode left <key>.partial (1.4 GB on the full set) until that very
    # dataset was used again.
    from microspeech.files import exclusive_lock

    clips = _clips(subset, 3)
    killed = tmp_path / "0123abcd.partial"
    killed.mkdir()
    (killed / "audio.int16").write_bytes(bytes(1000))
    building = tmp_path / "4567ef01.partial"
    building.mkdir()
    store = bank_store(tmp_path, (c.path for c in clips), 16000, 20.0)
    with exclusive_lock(tmp_path / "4567ef01.lock"):  # another process building that store now
        ClipBank.read(subset.read, clips, 16000, 20.0, store=store)
    assert not killed.exists() and building.exists()
    assert not (tmp_path / "0123abcd.lock").exists() and (tmp_path / "4567ef01.lock").exists()


def test_training_epochs_are_the_same_from_a_mapped_store(subset, tmp_path):
    target = get_model_spec("tflite_micro_speech-test").training_target()
    plain = TrainingPipeline(subset, target, seed=1)
    first = TrainingPipeline(subset, target, seed=1, bank_cache=tmp_path)
    second = TrainingPipeline(subset, target, seed=1, bank_cache=tmp_path)
    assert len(list(tmp_path.iterdir())) >= 1
    for pipeline in (first, second):
        features, labels = pipeline.epoch(2)
        expected_features, expected_labels = plain.epoch(2)
        assert np.array_equal(features, expected_features) and np.array_equal(labels, expected_labels)


def test_a_store_pruned_by_another_run_before_it_is_mapped_is_built_again(subset, tmp_path, monkeypatch):
    from microspeech.data import clip_bank

    clips = _clips(subset, 4)
    store = bank_store(tmp_path, (c.path for c in clips), 16000, 20.0)
    pruned = []

    def prune_this_one_once(keep):  # another run's pruning, racing this one's map
        if not pruned:
            pruned.append(keep)
            shutil.rmtree(keep)

    monkeypatch.setattr(clip_bank, "_prune_stores", prune_this_one_once)
    bank = ClipBank.read(subset.read, clips, 16000, 20.0, store=store)
    assert pruned == [store] and len(bank) == len(clips) and (store / COMPLETE_MARKER).exists()
