"""Class balancing, evaluation sets and dataset checks on the real Speech Commands bundles."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from microspeech.audio import write_wav
from microspeech.data import load_dataset
from microspeech.data.pipeline import (
    DatasetError,
    TrainingPipeline,
    even_quotas,
    make_eval_set,
    weighted_quotas,
)
from microspeech.models import get_model_spec, with_keywords

pytestmark = pytest.mark.xdist_group("pipeline")


@given(st.lists(st.integers(0, 50), min_size=1, max_size=12), st.integers(0, 400))
def test_even_quotas_share_evenly_and_never_overdraw(available, total):
    quotas = even_quotas(available, total)
    assert sum(quotas) == min(total, sum(available))
    assert all(0 <= q <= a for q, a in zip(quotas, available, strict=True))
    open_quotas = [q for q, a in zip(quotas, available, strict=True) if q < a]
    if open_quotas:  # groups not exhausted differ by at most one and hold at least as many as any other
        assert max(open_quotas) - min(open_quotas) <= 1
        assert min(open_quotas) >= max(quotas) - 1


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0])), min_size=1, max_size=12
    ),
    st.integers(0, 400),
)
def test_weighted_quotas_follow_the_weights(groups, total):
    available = [a for a, _ in groups]
    weights = [w for _, w in groups]
    quotas = weighted_quotas(available, weights, total)
    caps = [a * max(1, -(-w // 1)) for a, w in groups]
    assert sum(quotas) == min(total, sum(caps))
    assert all(0 <= q <= c for q, c in zip(quotas, caps, strict=True))
    # Groups below their cap hold shares in proportion to their weights, within one item.
    open_groups = [(q, w) for q, c, w in zip(quotas, caps, weights, strict=True) if q < c]
    for q, w in open_groups:
        for other_q, other_w in open_groups:
            assert q >= w / other_w * (other_q - 1) - 1


@pytest.fixture(scope="module")
def subset(subset_dir):
    return load_dataset(str(subset_dir))


@pytest.fixture(scope="module")
def dry_pipeline(subset):
    return TrainingPipeline(subset, get_model_spec("tflite_micro_speech-test").training_target(), seed=3)


def test_full_recipe_balances_unknown_and_silence_from_keyword_counts(subset):
    spec = get_model_spec("tflite_micro_speech")
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, max_clips_per_class=None))
    counts = {w: sum(1 for c in subset.split("train") if c.word == w) for w in ("yes", "no")}
    mean = (counts["yes"] + counts["no"]) / 2
    quotas_pool = Counter(c.word for c in subset.split("train") if c.word not in ("yes", "no"))
    expected_unknown = even_quotas(list(quotas_pool.values()), round(3 * mean))
    # The arithmetic only: cheap to check without decoding 4,000 clips.
    assert sum(expected_unknown) == round(3 * mean)
    assert round(0.2 * mean) == 161
    assert (
        max(expected_unknown)
        - min(q for q, a in zip(expected_unknown, quotas_pool.values(), strict=True) if q < a)
        <= 1
    )


def test_epochs_hold_every_class_unknown_from_many_words_and_are_deterministic(subset, dry_pipeline):
    from microspeech.data.augmentation import OTHER

    sources, labels, kinds = dry_pipeline.epoch_plan(0)
    counts = Counter(labels.tolist())
    assert counts[0] == counts[1] == 12  # dry run: 12 clips per keyword
    # min(3 x 12, 12) other words and the keyword fragments as unknown, round(0.2 x 12) silence
    assert counts[2] == 12 + dry_pipeline.n_fragments and counts[3] == 2
    bank_words = [c.word for w in sorted(dry_pipeline.unknown_pools) for c in dry_pipeline.unknown_pools[w]]
    offset = sum(len(p) for p in dry_pipeline.keyword_pools.values())
    unknown_words = {bank_words[s - offset] for s in sources[(labels == 2) & (kinds == OTHER)]}
    assert len(unknown_words) >= 10  # drawn evenly from the other words, not from one
    features, again_labels = dry_pipeline.epoch(0)
    assert features.dtype == np.int8 and features.shape == (len(labels), 49, 40)
    np.testing.assert_array_equal(again_labels, labels)
    np.testing.assert_array_equal(dry_pipeline.epoch(0)[0], features)
    assert not np.array_equal(dry_pipeline.epoch(1)[0], features)  # augmentation drawn anew per epoch


def test_unknown_word_weights_give_a_word_its_share_of_the_unknown_windows(dry_pipeline):
    import copy

    from microspeech.data.augmentation import OTHER

    weighted = copy.copy(dry_pipeline)
    weighted.target = dataclasses.replace(dry_pipeline.target, unknown_word_weights={"go": 3.0})
    dry_n_unknown = dry_pipeline.n_unknown
    weighted.n_unknown = dry_pipeline.n_unknown = 200  # more than the dry run's 12, from 12-clip pools
    try:
        counts = {}
        for pipeline in (dry_pipeline, weighted):
            kinds = pipeline.epoch_plan(0)[2]
            named = np.asarray(pipeline.word_classes)[pipeline.epoch_words(0)]
            counts[pipeline is weighted] = Counter(named[kinds == OTHER].tolist())
            assert sum(counts[pipeline is weighted].values()) == 200
        words = sorted(dry_pipeline.unknown_pools)
        pools = [len(dry_pipeline.unknown_pools[w]) for w in words]
        weights = [3.0 if w == "go" else 1.0 for w in words]
        assert counts[False] == dict(zip(words, even_quotas(pools, 200), strict=True))
        assert counts[True] == dict(zip(words, weighted_quotas(pools, weights, 200), strict=True))
        others = sorted(n for word, n in counts[True].items() if word != "go")
        assert counts[True]["go"] >= 3 * others[len(others) // 2] - 3  # three times a typical word's,
        assert counts[True]["go"] > len(dry_pipeline.unknown_pools["go"])  # its clips repeated
    finally:
        dry_pipeline.n_unknown = dry_n_unknown


def test_epoch_words_name_the_word_each_window_was_rendered_from(dry_pipeline):
    from microspeech.data.augmentation import FRAGMENT, KEYWORD, OTHER, REVERSED
    from microspeech.data.pipeline import FRAGMENT_WORD, REVERSED_WORD

    classes = dry_pipeline.word_classes
    bank_words = [c.word for p in dry_pipeline.keyword_pools.values() for c in p]
    bank_words += [c.word for w in sorted(dry_pipeline.unknown_pools) for c in dry_pipeline.unknown_pools[w]]
    assert sorted(set(bank_words)) == classes[:-3] and classes[-3:] == [
        "_silence_",
        FRAGMENT_WORD,
        REVERSED_WORD,
    ]
    for epoch in (0, 1):
        sources, labels, kinds = dry_pipeline.epoch_plan(epoch)
        words = dry_pipeline.epoch_words(epoch)
        assert words.shape == labels.shape
        named = [classes[w] for w in words]
        for source, label, kind, word in zip(sources, labels, kinds, named, strict=True):
            if source < 0:
                assert word == "_silence_" and dry_pipeline.classes[label] == "_silence_"
            elif kind == FRAGMENT:
                assert word == FRAGMENT_WORD
            elif kind == REVERSED:
                assert word == REVERSED_WORD
            else:
                assert kind in (KEYWORD, OTHER) and word == bank_words[source]
        # A keyword window's word is the keyword; an _unknown_ word window names its own word.
        keyword_rows = (kinds == KEYWORD) & (sources >= 0)
        assert all(named[i] == dry_pipeline.classes[labels[i]] for i in np.flatnonzero(keyword_rows))
        assert len({named[i] for i in np.flatnonzero(kinds == OTHER)}) >= 10
        assert (kinds == FRAGMENT).any()
    np.testing.assert_array_equal(dry_pipeline.epoch_words(1), words)  # drawn from (seed, epoch)


def test_an_epoch_is_the_same_rendered_in_small_batches(dry_pipeline, monkeypatch):
    import microspeech.data.pipeline as pipeline_module

    features, labels = dry_pipeline.epoch(2)
    frontend = dry_pipeline.target.frontend
    warm_up = pipeline_module.warm_up_samples(dry_pipeline.target.augmentation, frontend)
    row_bytes = 2 * (frontend.n_samples + warm_up)
    monkeypatch.setattr(pipeline_module, "FEATURE_BATCH_BYTES", 7 * row_bytes)  # 7 clips a batch
    batched, batched_labels = dry_pipeline.epoch(2)
    assert len(labels) > 7 * 3
    np.testing.assert_array_equal(batched_labels, labels)
    np.testing.assert_array_equal(batched, features)


def test_feature_masks_apply_to_training_epochs_only_and_leave_other_draws_alone(subset, dry_pipeline):
    target = dry_pipeline.target
    masked_target = dataclasses.replace(
        target,
        augmentation=dataclasses.replace(target.augmentation, time_mask_count=2, time_mask_max_frames=8),
    )
    masked = TrainingPipeline(subset, masked_target, seed=3)
    plain, labels = dry_pipeline.epoch(0)
    features, masked_labels = masked.epoch(0)
    np.testing.assert_array_equal(masked_labels, labels)
    changed = features != plain
    assert changed.any()
    # Only whole frames change (time bands), everything else is the unmasked epoch, bit for bit.
    assert np.all(changed.any(axis=2) == (changed.sum(axis=2) >= 30))
    assert changed.any(axis=2).sum(axis=1).max() <= 16
    np.testing.assert_array_equal(masked.epoch(0)[0], features)
    np.testing.assert_array_equal(masked.validation().features, dry_pipeline.validation().features)


def test_training_epochs_really_contain_background_noise(dry_pipeline):
    from microspeech.data.augmentation import draw_plan, render

    sources, _ = dry_pipeline.epoch_sources(0)
    rng = np.random.default_rng(0)
    plan = draw_plan(
        rng,
        sources,
        dry_pipeline.bank,
        dry_pipeline.noise,
        dry_pipeline.target.augmentation,
        16000,
        augment=True,
    )
    words = sources >= 0
    # the spec mixes noise into 80% of the word windows (the rest stay clean)
    assert (plan.noise_gains[words] > 0.01).mean() > 0.6
    audio = render(plan, dry_pipeline.bank, dry_pipeline.noise, 16000).astype(np.int64)
    clean = dataclasses.replace(plan, noise_gains=np.zeros_like(plan.noise_gains))
    difference = audio - render(clean, dry_pipeline.bank, dry_pipeline.noise, 16000)
    noisy = words & (plan.noise_gains > 0.05)
    assert np.abs(difference[noisy]).mean(axis=1).min() > 1.0


def test_eval_set_on_the_official_test_layout(test_set_dir):
    spec = get_model_spec("tflite_micro_speech")
    dataset = load_dataset(str(test_set_dir))
    eval_set = make_eval_set(dataset, "test", spec.classes, spec.frontend)
    counts = eval_set.counts()
    folders = Counter(c.word for c in dataset.split("test"))
    assert counts["yes"] == folders["yes"] and counts["no"] == folders["no"]
    assert counts["_silence_"] == folders["_silence_"]  # the real silence folder, used as is
    assert counts["_unknown_"] == sum(n for w, n in folders.items() if w not in ("yes", "no", "_silence_"))
    assert all(clip is not None for clip in eval_set.clips)
    assert eval_set.features.dtype == np.int8 and eval_set.features.shape[1:] == (49, 40)


def test_a_keyword_among_the_test_sets_unknown_files_is_scored_as_the_keyword(test_set_dir):
    """The official test set keeps "happy" as _unknown_/happy_<speaker>_nohash_<n>.wav: a model
    whose keyword it is scored those clips as _unknown_, and its "happy accuracy" as no clips."""
    spec = with_keywords(get_model_spec("tflite_micro_speech"), ["happy", "marvin"])
    dataset = load_dataset(str(test_set_dir))
    unknown = test_set_dir / "_unknown_"
    on_disk = {word: len(list(unknown.glob(f"{word}_*.wav"))) for word in ("happy", "marvin")}
    assert on_disk["happy"] > 0 and on_disk["marvin"] > 0
    eval_set = make_eval_set(dataset, "test", spec.classes, spec.frontend, max_per_class=None)
    counts = eval_set.counts()
    assert counts["happy"] == on_disk["happy"] and counts["marvin"] == on_disk["marvin"]
    assert counts["_unknown_"] == len(dataset.split("test")) - sum(on_disk.values()) - counts["_silence_"]


def test_eval_set_word_offset_moves_words_not_silence(test_set_dir):
    spec = get_model_spec("tflite_micro_speech")
    dataset = load_dataset(str(test_set_dir))
    kept = [c for c in dataset.clips if c.word in ("yes", "_silence_")][::20]
    small = dataclasses.replace(dataset, clips=kept)
    left = make_eval_set(small, "test", spec.classes, spec.frontend)
    right = make_eval_set(small, "test", spec.classes, spec.frontend, word_offset=1.0)
    words = np.array([clip.word != "_silence_" for clip in left.clips])
    assert words.any() and (~words).any()
    assert np.array_equal(left.labels, right.labels)
    assert np.array_equal(left.features[~words], right.features[~words])  # silence clips: untouched
    pairs = zip(left.features[words], right.features[words], strict=True)
    moved = [not np.array_equal(a, b) for a, b in pairs]
    assert np.mean(moved) > 0.9  # every word shorter than the window moves
    with pytest.raises(ValueError, match="word_offset"):
        make_eval_set(small, "test", spec.classes, spec.frontend, word_offset=1.5)


def test_eval_set_generates_silence_from_noise_deterministically(subset):
    spec = get_model_spec("tflite_micro_speech")
    first = make_eval_set(subset, "validation", spec.classes, spec.frontend, seed=1, max_per_class=20)
    second = make_eval_set(subset, "validation", spec.classes, spec.frontend, seed=1, max_per_class=20)
    np.testing.assert_array_equal(first.features, second.features)
    silence = first.labels == 3
    assert silence.sum() == 4  # round(0.2 x 20)
    assert all(first.clips[i] is None for i in np.flatnonzero(silence))
    assert all(first.clips[i] is not None for i in np.flatnonzero(~silence))


def _folder_dataset(root: Path, words: dict[str, int], noise: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for word, count in words.items():
        for i in range(count):
            tone = 3000 * np.sin(2 * np.pi * (300 + 50 * len(word)) * np.arange(8000) / 16000)
            write_wav(
                root / word / f"spk{i % 7}_nohash_{i}.wav", (tone + rng.normal(0, 30, 8000)).astype(np.int16)
            )
    if noise:
        write_wav(root / "_background_noise_" / "hum.wav", rng.normal(0, 500, 32000).astype(np.int16))
    return root


def test_clear_errors_before_training(tmp_path):
    spec = get_model_spec("tflite_micro_speech")
    missing = load_dataset(str(_folder_dataset(tmp_path / "missing", {"yes": 30, "cat": 30})))
    with pytest.raises(DatasetError, match="'no'.*no training clips"):
        TrainingPipeline(missing, spec.training_target())
    no_noise = load_dataset(str(_folder_dataset(tmp_path / "quiet", {"yes": 30, "no": 30, "cat": 30}, False)))
    with pytest.raises(DatasetError, match="_background_noise_"):
        TrainingPipeline(no_noise, spec.training_target())
    words = load_dataset(str(_folder_dataset(tmp_path / "words", {"yes": 30, "no": 30, "cat": 30})))
    misspelt = dataclasses.replace(spec.training_target(), unknown_word_weights={"cat": 2.0, "lfet": 2.0})
    with pytest.raises(DatasetError, match="unknown_word_weights .* name 'lfet', .* other words: cat"):
        TrainingPipeline(words, misspelt)
    # A keyword recorded by one person (a wake word one records oneself): all its clips share one
    # split; the error said "no training clips" and not why, nor the way out.
    from microspeech.data.splits import hash_split

    alone = _folder_dataset(tmp_path / "alone", {"yes": 30, "cat": 30})
    me = next(name for name in (f"me{i}" for i in range(1000)) if hash_split(name) != "train")
    for index in range(15):
        write_wav(alone / "no" / f"{me}_nohash_{index}.wav", np.full(8000, 1000, np.int16))
    said = r"'no'.*no training clips.* its 15 clip\(s\) of 'no' are all in (test|validation) \(15\)"
    said += r".* 1 speaker.*validation_list.txt"
    with pytest.raises(DatasetError, match=said):
        TrainingPipeline(load_dataset(str(alone)), spec.training_target())
    # The folder's lists put them there: say so, not speakers (they were 15 and the lists decided).
    listed = _folder_dataset(tmp_path / "listed_no", {"yes": 30, "no": 15, "cat": 30})
    (listed / "validation_list.txt").write_text("".join(f"no/spk{i % 7}_nohash_{i}.wav\n" for i in range(15)))
    (listed / "testing_list.txt").write_text("")
    said = r"'no'.*no training clips.* all in validation \(15\): as the folder's validation_list.txt"
    with pytest.raises(DatasetError, match=said + r".*leave some of them out of the lists"):
        TrainingPipeline(load_dataset(str(listed)), spec.training_target())
    tiny = load_dataset(str(_folder_dataset(tmp_path / "tiny", {"yes": 2, "no": 2, "cat": 2})))
    with pytest.raises(DatasetError, match="too small for the split|no training clips"):
        TrainingPipeline(tiny, spec.training_target())
    # With split lists it is the list that leaves validation empty, not too few speakers.
    listed_root = _folder_dataset(tmp_path / "listed", {"yes": 30, "no": 30, "cat": 30})
    (listed_root / "testing_list.txt").write_text("")
    said = "no validation clips of yes, no .* comes from its validation_list"
    with pytest.raises(DatasetError, match=said):
        TrainingPipeline(load_dataset(str(listed_root)), spec.training_target())


def test_an_all_zero_training_clip_stops_training_naming_it(tmp_path):
    # `dataset verify` flags such clips; training took them as "yes", teaching it to mean silence.
    from microspeech.audio import AudioError

    root = _folder_dataset(tmp_path / "zeros", {"yes": 30, "no": 30, "cat": 30})
    for path in (root / "yes").iterdir():
        write_wav(path, np.zeros(8000, np.int16))
    dataset = load_dataset(str(root))
    in_training = sum(clip.word == "yes" for clip in dataset.split("train"))
    assert in_training > 1
    with pytest.raises(AudioError, match=r"yes/spk\d_nohash_\d+\.wav: all samples are zero") as raised:
        TrainingPipeline(dataset, get_model_spec("tflite_micro_speech").training_target())
    assert f"as are {in_training - 1} more training clips; remove them" in str(raised.value)


def test_a_cap_per_class_below_one_is_refused(test_set_dir):
    # max_per_class=-1 sliced one clip off every class, silently.
    spec = get_model_spec("tflite_micro_speech")
    dataset = load_dataset(str(test_set_dir))
    for cap in (-1, 0, 2.5):
        with pytest.raises(ValueError, match=f"max_per_class={cap!r}"):
            make_eval_set(dataset, "test", spec.classes, spec.frontend, max_per_class=cap)
