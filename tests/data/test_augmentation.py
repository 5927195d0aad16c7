"""Batch augmentation kernels: trimming, placement, speed, pitch, loudness, noise mixing."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from microspeech.data.augmentation import NoiseBank, draw_plan, render
from microspeech.data.clip_bank import ClipBank, trim_bounds
from microspeech.data.settings import AugmentationSettings

WINDOW = 16000


def _tone(n: int, freq: float = 440.0, amplitude: float = 8000.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / 16000)).astype(np.int16)


def _word_in_silence() -> np.ndarray:
    quiet = np.zeros(4000, np.int16)
    return np.concatenate([quiet, _tone(6000), quiet])


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 16000 / len(samples))


def test_trim_keeps_the_loud_part_with_a_margin_of_at_most_a_frame():
    # Half a 2048-sample frame plus a hop at most, on each side.
    start, end = trim_bounds(_word_in_silence(), 20.0)
    assert 4000 - 1536 <= start <= 4000
    assert 10000 <= end <= 10000 + 1536
    assert trim_bounds(np.zeros(8000, np.int16)) == (0, 8000)
    assert trim_bounds(np.zeros(0, np.int16)) == (0, 0)


def test_trim_threshold_is_relative_to_the_loudest_frame():
    # A -26 dB tail is cut at 20 dB but kept at 30 dB.
    clip = np.concatenate([_tone(6000), _tone(6000, amplitude=400)])
    assert trim_bounds(clip, 20.0)[1] <= 6000 + 1536
    assert trim_bounds(clip, 30.0)[1] == 12000


@pytest.mark.parametrize("threshold_db", [20.0, 30.0])
def test_trim_matches_librosa_which_mltk_uses(subset_dir, threshold_db):
    """MLTK trims with librosa.effects.trim(top_db=...) on float audio; same bounds on real clips."""
    import librosa
    import soundfile

    paths = sorted(subset_dir.glob("*/*.wav"))[::25]
    assert len(paths) > 150
    for path in paths:
        samples, _ = soundfile.read(path, dtype="int16")
        _, expected = librosa.effects.trim(samples.astype(np.float32) / 32768.0, top_db=threshold_db)
        assert trim_bounds(samples, threshold_db) == tuple(int(v) for v in expected), path


def _bank(clips):
    return ClipBank.from_arrays(clips, WINDOW)


def test_no_augmentation_renders_the_clip_left_aligned_unchanged():
    clips = [_tone(3000), _tone(9000, 1000.0)]
    bank = _bank(clips)
    plan = draw_plan(
        np.random.default_rng(0), np.arange(2), bank, None, AugmentationSettings(), WINDOW, augment=False
    )
    out = render(plan, bank, None, WINDOW)
    for row, clip in zip(out, clips, strict=True):
        np.testing.assert_array_equal(row[: len(clip)], clip)
        assert not row[len(clip) :].any()


def test_without_augmentation_words_sit_at_the_requested_offset():
    bank = _bank([_tone(4000), _tone(10000)])
    settings = AugmentationSettings()
    for offset, expected in ((0.0, [0, 0]), (0.5, [6000, 3000]), (1.0, [12000, 6000])):
        rng = np.random.default_rng(0)
        plan = draw_plan(rng, np.arange(2), bank, None, settings, WINDOW, augment=False, word_offset=offset)
        assert plan.offsets.tolist() == expected
        out = render(plan, bank, None, WINDOW)
        assert np.flatnonzero(out[0])[0] in (expected[0], expected[0] + 1)  # sin(0) is 0


def test_random_offsets_keep_the_word_inside_the_window():
    bank = _bank([_tone(5000)] * 200)
    settings = AugmentationSettings(noise_probability=0.0)
    plan = draw_plan(np.random.default_rng(1), np.arange(200), bank, None, settings, WINDOW, augment=True)
    assert plan.offsets.min() >= 0 and plan.offsets.max() <= WINDOW - 5000
    assert len(set(plan.offsets.tolist())) > 150  # placement really varies
    out = render(plan, bank, None, WINDOW)
    np.testing.assert_array_equal((out != 0).sum(axis=1), (bank.audio[:5000] != 0).sum())


def test_background_noise_is_really_mixed_at_the_drawn_factor():
    rng = np.random.default_rng(2)
    noise = NoiseBank.from_arrays([rng.normal(0, 1000, 40000)], ["white"], WINDOW)
    bank = _bank([np.zeros(4000, np.int16)] * 64)
    settings = AugmentationSettings()  # the default recipe: noise factor in [0, 0.3], always on
    plan = draw_plan(np.random.default_rng(3), np.arange(64), bank, noise, settings, WINDOW, augment=True)
    assert 0.0 <= plan.noise_gains.min() and plan.noise_gains.max() <= 0.3
    assert (plan.noise_gains > 0.01).mean() > 0.9
    out = render(plan, bank, noise, WINDOW).astype(np.float64)
    for i in range(64):
        expected = plan.noise_gains[i] * noise.audio[plan.noise_starts[i] : plan.noise_starts[i] + WINDOW]
        np.testing.assert_allclose(out[i], np.round(expected), atol=1.0)
    assert out.std(axis=1).mean() > 100  # far from the silent input


def test_speed_changes_the_duration_and_pitch_keeps_it():
    bank = _bank([_tone(8000)])
    faster = AugmentationSettings(speed_range=(2.0, 2.0), noise_probability=0.0, offset_range=(0.0, 0.0))
    plan = draw_plan(np.random.default_rng(0), np.arange(1), bank, None, faster, WINDOW, augment=True)
    played = np.flatnonzero(render(plan, bank, None, WINDOW)[0])
    assert 3990 <= played[-1] <= 4000
    higher = AugmentationSettings(
        pitch_semitones_range=(12.0, 12.0), noise_probability=0.0, offset_range=(0.0, 0.0)
    )
    plan = draw_plan(np.random.default_rng(0), np.arange(1), bank, None, higher, WINDOW, augment=True)
    shifted = render(plan, bank, None, WINDOW)[0]
    assert abs(_dominant_hz(shifted[1000:7000]) - 880.0) < 15.0
    assert np.abs(shifted[7000:7800]).mean() > 1000 and not shifted[8100:].any()


def test_loudness_scales_and_saturates():
    bank = _bank([_tone(4000, amplitude=20000)])
    louder = AugmentationSettings(loudness_range=(2.0, 2.0), noise_probability=0.0, offset_range=(0.0, 0.0))
    plan = draw_plan(np.random.default_rng(0), np.arange(1), bank, None, louder, WINDOW, augment=True)
    out = render(plan, bank, None, WINDOW)[0]
    assert out.max() == 32767 and out.min() == -32768


def test_silence_is_noise_at_random_gains_including_near_zero():
    rng = np.random.default_rng(4)
    noise = NoiseBank.from_arrays([rng.normal(0, 3000, 20000)], ["pink"], WINDOW)
    bank = _bank([_tone(100)])
    sources = np.full(500, -1)
    for augment in (True, False):
        plan = draw_plan(
            np.random.default_rng(5), sources, bank, noise, AugmentationSettings(), WINDOW, augment=augment
        )
        assert plan.noise_gains.min() < 1e-3 and plan.noise_gains.max() > 0.5
        assert 0.03 < (plan.noise_gains < 0.01).mean() < 0.2
    levels = render(plan, bank, noise, WINDOW).std(axis=1)
    assert levels.max() > 100 * max(levels.min(), 1.0)


def test_rendering_is_deterministic_per_seed():
    rng = np.random.default_rng(6)
    noise = NoiseBank.from_arrays([rng.normal(0, 1000, 30000)], ["n"], WINDOW)
    bank = _bank([_tone(3000 + 100 * i) for i in range(20)])
    settings = AugmentationSettings(speed_range=(0.9, 1.1), loudness_range=(0.8, 1.2))

    def once(seed: int) -> np.ndarray:
        plan = draw_plan(
            np.random.default_rng(seed), np.arange(20), bank, noise, settings, WINDOW, augment=True
        )
        return render(plan, bank, noise, WINDOW)

    np.testing.assert_array_equal(once(7), once(7))
    assert not np.array_equal(once(7), once(8))


def test_short_noise_recordings_repeat_and_missing_noise_is_an_error():
    noise = NoiseBank.from_arrays([np.arange(1000)], ["short"], WINDOW)
    assert noise.lengths[0] >= WINDOW
    bank = _bank([_tone(100)])
    with pytest.raises(ValueError, match="noise"):
        draw_plan(
            np.random.default_rng(0), np.full(3, -1), bank, None, AugmentationSettings(), WINDOW, augment=True
        )


def test_feature_masks_really_mask_bands_and_are_deterministic_per_seed():
    from microspeech.data.augmentation import mask_features

    rng = np.random.default_rng(5)
    # Values +-100 only: the fill (each clip's mean, near 0) never equals an unmasked cell.
    features = rng.choice(np.array([-100, 100], np.int8), (200, 49, 40))
    original = features.copy()
    settings = AugmentationSettings(
        time_mask_count=1, time_mask_max_frames=6, freq_mask_count=1, freq_mask_max_channels=5
    )
    masked = mask_features(features, np.random.default_rng(1), settings)
    np.testing.assert_array_equal(features, original)  # input untouched
    again = mask_features(features, np.random.default_rng(1), settings)
    np.testing.assert_array_equal(masked, again)
    assert not np.array_equal(masked, mask_features(features, np.random.default_rng(2), settings))
    fill = original.reshape(200, -1).mean(axis=1).round().astype(np.int8)
    changed = masked != original
    frames_hit = changed.all(axis=2).sum(axis=1)  # whole frames masked (a time band)
    channels_hit = changed.all(axis=1).sum(axis=1)  # whole channels masked (a frequency band)
    assert frames_hit.max() == 6 and channels_hit.max() == 5 and frames_hit.min() == 0
    assert (frames_hit > 0).mean() > 0.7 and (channels_hit > 0).mean() > 0.7
    for i in range(200):  # every changed cell holds the clip's mean, and the bands are contiguous
        assert np.all(masked[i][changed[i]] == fill[i])
        rows = np.flatnonzero(changed[i].all(axis=1))
        assert len(rows) == 0 or rows[-1] - rows[0] + 1 == len(rows)
        assert changed[i].sum() <= 6 * 40 + 5 * 49
    off = mask_features(features, np.random.default_rng(1), AugmentationSettings())
    np.testing.assert_array_equal(off, original)


@numba.njit(cache=True)
def _render_by_definition(bank_audio, bank_starts, bank_lengths, plan_arrays, noise_audio, window):
    """The mix as defined, every sample of the window: each word (and neighbour) read at
    `(t - offset) * speed` with linear interpolation, zero outside the clip; noise everywhere;
    then the first `silent_until` samples zeroed and the sum rounded and clipped to int16."""
    (sources, offsets, gains, speeds, noise_starts, noise_gains, silent_until, backwards_, neighbours,
     n_offsets, n_gains) = plan_arrays  # fmt: skip
    out = np.empty((len(sources), window), np.int16)
    for i in range(len(sources)):
        mixed = np.zeros(window, np.float32)
        for word, offset, gain, backwards in (
            (sources[i], offsets[i], gains[i], backwards_[i]),
            (neighbours[i], n_offsets[i], n_gains[i], False),
        ):
            if word < 0:
                continue
            start, length = bank_starts[word], bank_lengths[word]
            for t in range(window):
                position = (t - offset) * speeds[i]
                value = 0.0
                if 0.0 <= position <= length - 1:
                    if backwards:
                        position = length - 1 - position
                    k = int(position)
                    a = np.float32(bank_audio[start + k])
                    b = np.float32(bank_audio[start + min(k + 1, length - 1)])
                    value = a + (position - k) * (b - a)
                mixed[t] += gain * value
        if noise_gains[i] != 0.0:
            for t in range(window):
                mixed[t] += noise_gains[i] * noise_audio[noise_starts[i] + t]
        mixed[: silent_until[i]] = 0.0
        for t in range(window):
            out[i, t] = min(max(np.round(mixed[t]), -32768.0), 32767.0)
    return out


def test_render_equals_the_mix_as_defined_to_the_bit(subset_dir):
    # `render` skips the samples it knows are zero (past a word's end, before a silent start);
    # on real words and noise, with every kind of window the training recipe draws (warm-up,
    # fragments, neighbours, reversed words, noise onsets), the result must not change.
    from microspeech.data import load_dataset
    from microspeech.data.augmentation import FRAGMENT, KEYWORD, OTHER, REVERSED
    from microspeech.models import get_model_spec

    dataset = load_dataset(str(subset_dir))
    clips = dataset.split("train")[::97][:48]
    bank = ClipBank.from_arrays([dataset.read(clip) for clip in clips], WINDOW)
    window, warm_up = WINDOW, 2 * WINDOW
    noise = NoiseBank.read(dataset.read_noise, sorted(dataset.noise_paths), window + warm_up)
    settings = get_model_spec("tflite_micro_speech").augmentation
    rng = np.random.default_rng(11)
    count = 600
    sources = np.where(rng.random(count) < 0.1, -1, rng.integers(0, len(clips), count))
    kinds = rng.choice([KEYWORD, OTHER, FRAGMENT, REVERSED], count)
    plan = draw_plan(
        rng, sources, bank, noise, settings, window, augment=True, kinds=kinds, warm_up=warm_up,
        neighbour_pool=np.arange(len(clips)),
    )  # fmt: skip
    assert (plan.silent_until == warm_up).any() and (plan.silent_until == 0).any()
    assert (plan.neighbour_sources >= 0).any() and plan.reversed.any() and (plan.pitches == 1.0).all()
    expected = _render_by_definition(
        bank.audio,
        bank.starts,
        bank.lengths,
        (
            plan.sources, plan.offsets, plan.gains, plan.speeds, plan.noise_starts, plan.noise_gains,
            plan.silent_until, plan.reversed, plan.neighbour_sources, plan.neighbour_offsets,
            plan.neighbour_gains,
        ),
        noise.audio,
        window + warm_up,
    )  # fmt: skip
    np.testing.assert_array_equal(render(plan, bank, noise, window + warm_up), expected)
