"""Stream-like training windows: the labelling rule at the window's edges, warm-up, SNR noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from microspeech.audio import active_rms
from microspeech.data.augmentation import FRAGMENT, KEYWORD, OTHER, REVERSED, NoiseBank, draw_plan, render
from microspeech.data.clip_bank import ClipBank
from microspeech.data.pipeline import TrainingPipeline, _render_features, warm_up_samples
from microspeech.data.settings import AugmentationSettings
from microspeech.frontend import FrontendSettings, compute_features
from microspeech.models import get_model_spec, list_models

WINDOW = 16000
COUNT = 400


def _word(length: int = 8000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (3000 * rng.standard_normal(length)).clip(-32000, 32000).astype(np.int16)


STREAM_LIKE = AugmentationSettings(
    keyword_visible_min=0.8,
    other_visible_min=0.5,
    fragment_ratio=0.5,
    fragment_visible_range=(0.15, 0.5),
    noise_probability=0.0,
)


def _visible_fraction(offsets: np.ndarray, length: int, window: int) -> np.ndarray:
    inside = np.minimum(offsets + length, window) - np.maximum(offsets, 0)
    return np.clip(inside, 0, None) / length


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [(KEYWORD, 0.8, 1.0), (OTHER, 0.5, 1.0), (FRAGMENT, 0.15, 0.5), (REVERSED, 0.5, 1.0)],
)
def test_the_labelling_rule_bounds_how_much_of_the_word_is_inside(kind, low, high):
    """Keyword windows keep >= 80% of the word, other words (reversed ones too) >= 50%, fragments
    15-50% at one edge."""
    bank = ClipBank.from_arrays([_word()], WINDOW)
    plan = draw_plan(
        np.random.default_rng(0),
        np.zeros(COUNT, np.int64),
        bank,
        None,
        STREAM_LIKE,
        WINDOW,
        augment=True,
        kinds=np.full(COUNT, kind),
    )
    visible = _visible_fraction(plan.offsets, 8000, WINDOW)
    assert visible.min() >= low - 1e-3 and visible.max() <= high + 1e-3
    if kind != FRAGMENT:
        assert (visible < 1.0).any() and (visible == 1.0).any()  # cut at the edges, and whole
    else:
        cut_start, cut_end = plan.offsets < 0, plan.offsets + 8000 > WINDOW
        assert np.all(cut_start ^ cut_end) and cut_start.any() and cut_end.any()


@pytest.mark.parametrize("speed", [1.0, 0.9])
def test_reversed_words_play_backwards(speed):
    """A REVERSED word renders as the same word, at the same speed, read from its last sample."""
    ramp = np.arange(8000)
    word = (ramp / 3 * np.sin(2 * np.pi * 150 * ramp / 16000)).astype(np.int16)
    bank = ClipBank.from_arrays([word], WINDOW)
    settings = dataclasses.replace(STREAM_LIKE, speed_range=(speed, speed), offset_range=(0.0, 0.0))
    settings = dataclasses.replace(settings, other_visible_min=1.0, keyword_visible_min=1.0)
    rendered = {}
    for kind in (OTHER, REVERSED):
        rng, sources = np.random.default_rng(0), np.zeros(1, np.int64)
        plan = draw_plan(rng, sources, bank, None, settings, WINDOW, augment=True, kinds=np.array([kind]))
        assert plan.offsets[0] == 0 and plan.reversed[0] == (kind == REVERSED)
        rendered[kind] = render(plan, bank, None, WINDOW)[0]
    # Output sample t reads the word at (length - 1) - t x speed, linearly interpolated.
    t = np.arange(WINDOW)
    position = 7999 - t * speed
    expected = np.where(position >= 0, np.interp(position, np.arange(8000), word), 0.0)
    assert np.abs(rendered[REVERSED] - expected).max() <= 1.0  # rounding to int16
    if speed == 1.0:
        np.testing.assert_array_equal(rendered[REVERSED][:8000], word[::-1])
        np.testing.assert_array_equal(rendered[OTHER][:8000], word)


def test_keywords_kept_whole_at_the_start_are_cut_only_at_the_end():
    """keyword_start_inside: the word's start is always in the window; only its end may be cut."""
    bank = ClipBank.from_arrays([_word()], WINDOW)
    settings = dataclasses.replace(STREAM_LIKE, keyword_start_inside=True)
    kinds = np.array([KEYWORD, OTHER] * (COUNT // 2))
    sources = np.zeros(COUNT, np.int64)
    rng = np.random.default_rng(0)
    plan = draw_plan(rng, sources, bank, None, settings, WINDOW, augment=True, kinds=kinds)
    keyword, other = plan.offsets[kinds == KEYWORD], plan.offsets[kinds == OTHER]
    visible = _visible_fraction(keyword, 8000, WINDOW)
    assert keyword.min() >= 0 and visible.min() >= 0.8 - 1e-3 and (visible < 1.0).any()
    assert (other < 0).any()  # other words are still cut at either edge


@pytest.mark.parametrize("length", [4000, 8000, 15000])
def test_keyword_end_range_puts_keywords_where_asked_and_moves_nothing_else(length):
    """keyword_end_range: a keyword's end lies in that share of the window, as far as the labelling
    rule lets it (a 15000-sample word ending before 75% would show less than 80% of itself); other
    words and every other draw are those of the run without it."""
    bank = ClipBank.from_arrays([_word(length)], WINDOW)
    settings = dataclasses.replace(STREAM_LIKE, keyword_end_range=(0.6, 0.9))
    kinds = np.array([KEYWORD, OTHER, FRAGMENT, KEYWORD] * (COUNT // 4))
    sources = np.zeros(COUNT, np.int64)
    plans = [
        draw_plan(np.random.default_rng(0), sources, bank, None, chosen, WINDOW, augment=True, kinds=kinds)
        for chosen in (settings, STREAM_LIKE)
    ]
    ends = (plans[0].offsets + length)[kinds == KEYWORD] / WINDOW
    visible = _visible_fraction(plans[0].offsets[kinds == KEYWORD], length, WINDOW)
    assert visible.min() >= 0.8 - 1e-3
    assert ends.min() >= 0.6 - 1e-4 and ends.max() <= 0.9 + 1e-4
    if length <= 0.6 * WINDOW:
        assert ends.max() - ends.min() > 0.25  # spread over the range, not one place
    else:  # ends before 0.75 would show less than 80% of it: those sit at the rule's bound
        at_bound = plans[0].offsets[kinds == KEYWORD] == -np.floor((1.0 - 0.8) * length)
        assert at_bound.any() and ends[at_bound].max() == ends.min() > 0.75 - 1e-3
    moved = plans[0].offsets != plans[1].offsets
    assert not moved[kinds != KEYWORD].any()
    np.testing.assert_array_equal(plans[0].noise_gains, plans[1].noise_gains)
    np.testing.assert_array_equal(plans[0].gains, plans[1].gains)


def test_keyword_end_range_outside_the_window_is_rejected():
    with pytest.raises(ValueError, match="keyword_end_range"):
        AugmentationSettings(keyword_end_range=(0.5, 1.2))
    with pytest.raises(ValueError, match="keyword_end_range"):
        AugmentationSettings(keyword_end_range=(0.9, 0.6))


def test_whole_words_land_exactly_as_mltks_offset_range_draws_them():
    """keyword_visible_min 1 (the default) keeps today's placement: within the window."""
    bank = ClipBank.from_arrays([_word()], WINDOW)
    plan = draw_plan(
        np.random.default_rng(0),
        np.zeros(COUNT, np.int64),
        bank,
        None,
        AugmentationSettings(noise_probability=0.0),
        WINDOW,
        augment=True,
    )
    assert plan.offsets.min() >= 0 and (plan.offsets + 8000).max() <= WINDOW
    assert np.all(plan.silent_until == 0)


def test_a_fresh_window_after_digital_silence_has_exactly_the_fresh_frontends_features():
    """Warm-up off for a window (warm_up_probability 0) means the frontend starts fresh at the window,
    also when the window starts with sound (noise here): the frame straddling its start must not
    reach the frontend first."""
    frontend = FrontendSettings()
    noise = NoiseBank.from_arrays([_word(64000, seed=9)], ["noise"], WINDOW + 16000)
    bank = ClipBank.from_arrays([_word(6000, seed=s) for s in range(8)], WINDOW)
    sources = np.arange(8)
    fresh = dataclasses.replace(
        STREAM_LIKE,
        warm_up_ms=1000,
        warm_up_probability=0.0,
        keyword_visible_min=1.0,
        noise_probability=1.0,
        snr_db_range=(10.0, 10.0),
    )
    fresh_features = _render_features(
        np.random.default_rng(3), sources, bank, noise, fresh, frontend, augment=True
    )
    plan = draw_plan(
        np.random.default_rng(3), sources, bank, noise, fresh, WINDOW, augment=True, warm_up=16000
    )
    audio = render(plan, bank, noise, WINDOW + 16000)
    assert np.all(audio[:, :16000] == 0) and np.all(np.abs(audio[:, 16000:16480]).max(axis=1) > 0)
    expected = compute_features(np.ascontiguousarray(audio[:, 16000:]), frontend, dtype="int8")
    np.testing.assert_array_equal(fresh_features, expected)
    # Half warm, half fresh: each row as if rendered alone.
    mixed = dataclasses.replace(fresh, warm_up_probability=0.5)
    plan = draw_plan(
        np.random.default_rng(4), sources, bank, noise, mixed, WINDOW, augment=True, warm_up=16000
    )
    audio = render(plan, bank, noise, WINDOW + 16000)
    features = _render_features(np.random.default_rng(4), sources, bank, noise, mixed, frontend, augment=True)
    longer = frontend.replace(sample_length_ms=2000)
    for row, silent in enumerate(plan.silent_until):
        if silent:
            expected = compute_features(audio[row, 16000:], frontend, dtype="int8")
        else:
            expected = compute_features(audio[row], longer, dtype="int8")[-49:]
        np.testing.assert_array_equal(features[row], expected)
    assert 0 < np.count_nonzero(plan.silent_until) < len(sources)


def test_warm_windows_see_the_audio_before_them():
    frontend = FrontendSettings()
    noise = NoiseBank.from_arrays([_word(64000, seed=9)], ["noise"], WINDOW + 16000)
    bank = ClipBank.from_arrays([_word(6000)], WINDOW)
    warm = dataclasses.replace(
        STREAM_LIKE,
        warm_up_ms=1000,
        warm_up_probability=1.0,
        noise_probability=1.0,
        snr_db_range=(10.0, 10.0),
    )
    plan = draw_plan(
        np.random.default_rng(0),
        np.zeros(4, np.int64),
        bank,
        noise,
        warm,
        WINDOW,
        augment=True,
        warm_up=16000,
    )
    audio = render(plan, bank, noise, WINDOW + 16000)
    assert np.all(plan.silent_until == 0) and np.all(np.abs(audio[:, :16000]).max(axis=1) > 0)
    with pytest.raises(ValueError, match="multiple of the frontend step"):
        warm_up_samples(dataclasses.replace(warm, warm_up_ms=1010), frontend)


def test_noise_is_mixed_at_the_drawn_speech_to_noise_ratio():
    noise_audio = (1000 * np.random.default_rng(5).standard_normal(64000)).astype(np.float32)
    noise = NoiseBank.from_arrays([noise_audio], ["noise"], WINDOW)
    word = _word(8000)
    bank = ClipBank.from_arrays([word], WINDOW)
    settings = dataclasses.replace(STREAM_LIKE, noise_probability=1.0, snr_db_range=(10.0, 10.0))
    plan = draw_plan(
        np.random.default_rng(1),
        np.zeros(6, np.int64),
        bank,
        noise,
        settings,
        WINDOW,
        augment=True,
        kinds=np.full(6, KEYWORD),
    )
    silent = dataclasses.replace(plan, noise_gains=np.zeros(6, np.float32))
    speech = render(silent, bank, noise, WINDOW).astype(np.float64)
    mixed = render(plan, bank, noise, WINDOW).astype(np.float64)
    for row in range(6):
        snr = 20 * np.log10(active_rms(speech[row]) / np.sqrt(np.mean((mixed[row] - speech[row]) ** 2)))
        assert snr == pytest.approx(10.0, abs=0.3)


@pytest.mark.parametrize("name", list_models())
def test_epochs_hold_keyword_fragments_and_reversed_words_as_unknown_and_are_deterministic(name, subset_dir):
    from microspeech.data import load_dataset

    spec = get_model_spec(f"{name}-test")
    augmentation = dataclasses.replace(spec.augmentation, fragment_ratio=0.5, reversed_ratio=0.4)
    spec = dataclasses.replace(spec, augmentation=augmentation)
    pipeline = TrainingPipeline(load_dataset(str(subset_dir)), spec.training_target(), seed=4)
    sources, labels, kinds = pipeline.epoch_plan(2)
    unknown = spec.classes.index("_unknown_")
    assert (
        np.all(labels[kinds == FRAGMENT] == unknown) and (kinds == FRAGMENT).sum() == pipeline.n_fragments > 0
    )
    assert (kinds == REVERSED).sum() == pipeline.n_reversed > 0 and np.all(
        labels[kinds == REVERSED] == unknown
    )
    # Reversed words come from keywords and other words alike.
    n_keyword_clips = sum(len(pool) for pool in pipeline.keyword_pools.values())  # first in the bank
    reversed_sources = sources[kinds == REVERSED]
    assert (reversed_sources < n_keyword_clips).any() and (reversed_sources >= n_keyword_clips).any()
    keyword_labels = {spec.classes.index(k) for k in spec.keywords}
    assert set(labels[kinds == KEYWORD]) - {spec.classes.index("_silence_")} <= keyword_labels
    again_pipeline = TrainingPipeline(load_dataset(str(subset_dir)), spec.training_target(), seed=4)
    first, again = pipeline.epoch(2), again_pipeline.epoch(2)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


NEIGHBOURS = dataclasses.replace(STREAM_LIKE, neighbour_probability=1.0, neighbour_gap_ms_range=(50.0, 400.0))


def test_neighbours_sit_beside_keywords_and_other_words_never_on_them():
    """Every KEYWORD and OTHER word gets a word from the pool beside it, 50-400 ms before its start
    or after its end; fragments, reversed words and silence get none; the other draws are those of
    a plan without neighbours."""
    lengths = [8000, 5000, 3000]
    bank = ClipBank.from_arrays([_word(n, seed=n) for n in lengths], WINDOW)
    kinds = np.array([KEYWORD, OTHER, FRAGMENT, REVERSED] * (COUNT // 4))
    sources = np.where(np.arange(COUNT) % 8 == 7, -1, 0)  # some silence too
    pool = np.array([1, 2])
    noise = NoiseBank.from_arrays([_word(64000, seed=9)], ["noise"], WINDOW + 4000)  # for the silence
    plan = draw_plan(
        np.random.default_rng(5),
        sources,
        bank,
        noise,
        NEIGHBOURS,
        WINDOW,
        augment=True,
        kinds=kinds,
        warm_up=4000,
        neighbour_pool=pool,
    )
    has = plan.neighbour_sources >= 0
    eligible = (sources >= 0) & ((kinds == KEYWORD) | (kinds == OTHER))
    np.testing.assert_array_equal(has, eligible)
    assert set(plan.neighbour_sources[has]) == {1, 2}
    word_end = plan.offsets[has] + 8000  # speed 1: the word plays its 8000 samples
    neighbour_end = plan.neighbour_offsets[has] + np.array(lengths)[plan.neighbour_sources[has]]
    after = plan.neighbour_offsets[has] - word_end
    before = plan.offsets[has] - neighbour_end
    gap = np.where(after >= 0, after, before)
    assert (after >= 0).any() and (before >= 0).any()
    assert gap.min() >= 50 * 16 and gap.max() <= 400 * 16
    without = draw_plan(
        np.random.default_rng(5),
        sources,
        bank,
        noise,
        STREAM_LIKE,
        WINDOW,
        augment=True,
        kinds=kinds,
        warm_up=4000,
        neighbour_pool=pool,
    )
    assert np.all(without.neighbour_sources == -1)
    for field in ("offsets", "gains", "speeds", "noise_starts", "noise_gains", "silent_until"):
        np.testing.assert_array_equal(getattr(plan, field), getattr(without, field))


@pytest.mark.parametrize("speed", [1.0, 0.9])
def test_a_neighbour_renders_as_the_same_word_played_at_its_place(speed):
    """The window is its word plus the neighbour, each as it would render alone (int16 rounding apart)."""
    bank = ClipBank.from_arrays([_word(6000, seed=1), _word(4000, seed=2)], WINDOW)
    settings = dataclasses.replace(NEIGHBOURS, speed_range=(speed, speed))
    plan = draw_plan(
        np.random.default_rng(2),
        np.zeros(32, np.int64),
        bank,
        None,
        settings,
        WINDOW,
        augment=True,
        kinds=np.full(32, OTHER),
        neighbour_pool=np.array([1]),
    )
    both = render(plan, bank, None, WINDOW).astype(np.int64)
    alone = dataclasses.replace(plan, neighbour_sources=np.full(32, -1))
    neighbour_alone = dataclasses.replace(
        plan,
        sources=plan.neighbour_sources,
        offsets=plan.neighbour_offsets,
        gains=plan.neighbour_gains,
        neighbour_sources=np.full(32, -1),
    )
    parts = render(alone, bank, None, WINDOW).astype(np.int64) + render(
        neighbour_alone, bank, None, WINDOW
    ).astype(np.int64)
    assert np.abs(both - parts).max() <= 1
    visible = (plan.neighbour_offsets < WINDOW) & (plan.neighbour_offsets + 4000 / speed > 0)
    assert visible.any() and np.all(np.abs(both - render(alone, bank, None, WINDOW)).max(axis=1)[visible] > 0)


@pytest.mark.parametrize("name", list_models())
def test_epochs_with_neighbours_keep_their_labels_and_never_add_a_keyword(name, subset_dir):
    from microspeech.data import load_dataset

    spec = get_model_spec(f"{name}-test")
    one_word = dataclasses.replace(spec.augmentation, neighbour_probability=0.0)
    one_word_spec = dataclasses.replace(spec, augmentation=one_word)
    plain = TrainingPipeline(load_dataset(str(subset_dir)), one_word_spec.training_target(), seed=4)
    augmentation = dataclasses.replace(spec.augmentation, neighbour_probability=0.5)
    spec = dataclasses.replace(spec, augmentation=augmentation)
    pipeline = TrainingPipeline(load_dataset(str(subset_dir)), spec.training_target(), seed=4)
    np.testing.assert_array_equal(pipeline.epoch_plan(2)[1], plain.epoch_plan(2)[1])
    n_keyword_clips = sum(len(pool) for pool in pipeline.keyword_pools.values())  # first in the bank
    assert pipeline.neighbour_pool.min() >= n_keyword_clips
    assert pipeline.neighbour_pool.max() == len(pipeline.bank) - 1
    first, again = pipeline.epoch(2), pipeline.epoch(2)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], plain.epoch(2)[0])


ONSET = dataclasses.replace(
    STREAM_LIKE,
    noise_probability=0.5,
    snr_db_range=(10.0, 10.0),
    warm_up_ms=1000,
    warm_up_probability=0.5,
    noise_onset_probability=1.0,
    noise_onset_snr_db_range=(40.0, 40.0),
    noise_onset_lead_ms_range=(100.0, 300.0),
)


def test_a_noise_onset_starts_a_quiet_bed_abruptly_before_the_word_and_moves_no_other_draw():
    """Word windows drawn without background noise get a bed 40 dB under the word that starts
    100-300 ms before it, digital silence before that (never before the fresh window's start);
    noisy windows and silence keep their draws, and so does every window's word."""
    noise_audio = (1000 * np.random.default_rng(5).standard_normal(96000)).astype(np.float32)
    noise = NoiseBank.from_arrays([noise_audio], ["noise"], WINDOW + 16000)
    bank = ClipBank.from_arrays([_word(6000)], WINDOW)
    sources = np.where(np.arange(COUNT) % 8 == 7, -1, 0)
    kinds = np.full(COUNT, KEYWORD)
    args = (sources, bank, noise)
    options = {"augment": True, "kinds": kinds, "warm_up": 16000}
    plan = draw_plan(np.random.default_rng(3), *args, ONSET, WINDOW, **options)
    off = dataclasses.replace(ONSET, noise_onset_probability=0.0)
    without = draw_plan(np.random.default_rng(3), *args, off, WINDOW, **options)
    onset = (sources >= 0) & (without.noise_gains == 0)
    assert onset.sum() > COUNT // 4 and (~onset & (sources >= 0)).sum() > COUNT // 4
    for field in ("sources", "offsets", "gains", "speeds", "neighbour_sources"):
        np.testing.assert_array_equal(getattr(plan, field), getattr(without, field))
    for field in ("noise_starts", "noise_gains", "silent_until"):
        np.testing.assert_array_equal(getattr(plan, field)[~onset], getattr(without, field)[~onset])
    assert np.all(plan.noise_gains[onset] > 0)
    lead = plan.offsets[onset] - plan.silent_until[onset]
    fresh = without.silent_until[onset] == 16000
    assert np.all(plan.silent_until[onset] >= without.silent_until[onset])
    inside = ~fresh | (plan.offsets[onset] - 16000 >= 300 * 16)  # the whole lead fits in the window
    assert lead[inside].min() >= 100 * 16 and lead[inside].max() <= 300 * 16
    speech = render(
        dataclasses.replace(plan, noise_gains=np.zeros(COUNT, np.float32)), bank, noise, WINDOW + 16000
    )
    mixed = render(plan, bank, noise, WINDOW + 16000).astype(np.float64)
    for row in np.flatnonzero(onset)[:20]:
        start = plan.silent_until[row]
        assert not mixed[row, :start].any()
        bed = mixed[row, start:] - speech[row, start:]
        snr = 20 * np.log10(active_rms(speech[row].astype(np.float64)) / np.sqrt(np.mean(bed**2)))
        assert snr == pytest.approx(40.0, abs=0.5)


def test_a_noise_onset_needs_an_snr_range():
    with pytest.raises(ValueError, match="noise_onset_probability needs snr_db_range"):
        AugmentationSettings(noise_onset_probability=0.5)
