"""Batch audio augmentation: place, stretch, pitch-shift, scale and mix noise, for many clips at once.

MLTK's generator decodes, trims and augments one clip at a time in Python (about 3 ms per
clip). Here the decoded, trimmed clips sit once in one int16 buffer (`ClipBank`), the
background noise in another (`NoiseBank`); each epoch draws every clip's parameters with
numpy (`draw_plan`) and one parallel numba kernel renders the whole batch (`render`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numba
import numpy as np

from microspeech.audio import SAMPLE_RATE
from microspeech.data.clip_bank import ClipBank

if TYPE_CHECKING:
    from microspeech.data.settings import AugmentationSettings

# What each rendered word is, for its placement (`draw_plan`'s `kinds`); a REVERSED word is
# played backwards and placed like an OTHER word.
KEYWORD, OTHER, FRAGMENT, REVERSED = 0, 1, 2, 3
# Grain size for pitch shifting (64 ms hann windows at 75% overlap).
GRAIN = 1024
GRAIN_HOP = GRAIN // 4
# Hann window halved: four overlapping grains then sum to exactly one.
_GRAIN_WINDOW = (0.25 - 0.25 * np.cos(2.0 * np.pi * np.arange(GRAIN) / GRAIN)).astype(np.float32)


@dataclass
class NoiseBank:
    """Background-noise recordings as float32, back to back, each at least one window long."""

    audio: np.ndarray  # float32
    starts: np.ndarray
    lengths: np.ndarray
    names: list[str]

    @classmethod
    def from_arrays(cls, recordings: Sequence[np.ndarray], names: Sequence[str], window: int) -> NoiseBank:
        padded = []
        for samples in recordings:
            samples = np.asarray(samples, dtype=np.float32)
            if len(samples) == 0:
                continue
            # A recording shorter than a window repeats, so every slice is real noise.
            reps = -(-window // len(samples))
            padded.append(np.tile(samples, reps) if reps > 1 else samples)
        lengths = np.array([len(p) for p in padded], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if padded else lengths
        audio = np.concatenate(padded) if padded else np.zeros(0, np.float32)
        return cls(audio, starts, lengths, list(names))

    @classmethod
    def read(cls, read: Callable[[Path], np.ndarray], paths: Sequence[Path], window: int) -> NoiseBank:
        return cls.from_arrays([read(p) for p in paths], [p.name for p in paths], window)

    def __len__(self) -> int:
        return len(self.lengths)

    @functools.cached_property
    def recording_rms(self) -> np.ndarray:
        """RMS (int16 units) of each recording, computed once (streams scale their noise bed so)."""
        return np.array(
            [
                np.sqrt(np.mean(np.square(self.audio[s : s + n], dtype=np.float64)))
                for s, n in zip(self.starts, self.lengths, strict=True)
            ]
        )

    def rms_at(self, starts: np.ndarray) -> np.ndarray:
        """RMS of the recording each start index (into `audio`) falls in."""
        return self.recording_rms[np.searchsorted(self.starts, starts, side="right") - 1]

    def draw_starts(self, rng: np.random.Generator, count: int, window: int) -> np.ndarray:
        """Start indices (into `audio`) of `count` random `window`-long slices."""
        if len(self) == 0:
            raise ValueError("no background-noise recordings to draw from")
        files = rng.integers(0, len(self), count)
        room = self.lengths[files] - window + 1
        return self.starts[files] + (rng.random(count) * room).astype(np.int64)


@dataclass
class Plan:
    """Per-output-clip parameters for `render`. `sources` -1 means a pure noise (silence) clip."""

    sources: np.ndarray  # int64 index into the ClipBank, or -1
    offsets: np.ndarray  # int64: where the clip starts in the output window
    gains: np.ndarray  # float32: loudness factor of the clip
    speeds: np.ndarray  # float32: > 1 plays faster (shorter)
    pitches: np.ndarray  # float32: frequency factor (1 = unchanged)
    noise_starts: np.ndarray  # int64 into NoiseBank.audio
    noise_gains: np.ndarray  # float32: 0 = no noise
    # int64: samples before this index are digital silence (the frontend starts fresh there);
    # 0 lets the frontend warm up on the audio before the window, as on a stream.
    silent_until: np.ndarray
    reversed: np.ndarray  # bool: the word plays backwards (from its last sample)
    # A second word beside the first (AugmentationSettings.neighbour_probability): its ClipBank
    # index (-1: none), where it starts in the buffer and its gain; it plays at the first
    # word's speed, forwards, pitch unchanged.
    neighbour_sources: np.ndarray  # int64
    neighbour_offsets: np.ndarray  # int64
    neighbour_gains: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.sources)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], count: int) -> np.ndarray:
    low, high = bounds
    return (low + (high - low) * rng.random(count)) if high > low else np.full(count, low)


def draw_plan(
    rng: np.random.Generator,
    sources: np.ndarray,
    bank: ClipBank,
    noise: NoiseBank | None,
    settings: AugmentationSettings,
    window: int,
    *,
    augment: bool,
    word_offset: float = 0.0,
    kinds: np.ndarray | None = None,
    warm_up: int = 0,
    neighbour_pool: np.ndarray | None = None,
) -> Plan:
    """Draw every clip's augmentation. Without `augment`: unchanged, no noise, each word at
    `word_offset` of the room left in the window (0 left-aligns, as evaluation does by default).

    Silence clips (source -1) are always noise slices at a random gain, drawn log-uniformly
    from `silence_gain_range` with a `silence_near_zero_fraction` share near zero.

    Stream-like windows (see `AugmentationSettings`): `kinds` says per clip whether it is a
    KEYWORD, an OTHER word, a keyword FRAGMENT or a REVERSED word, played backwards and placed
    like an OTHER word (default: all KEYWORD); the rendered buffer
    is `warm_up` samples of audio before the `window`, and offsets count from the buffer's
    start. A keyword may stick out of the window by up to 1 - keyword_visible_min of its
    length (at its end only, with keyword_start_inside), another word by 1 - other_visible_min;
    a fragment shows only between
    fragment_visible_range of it, cut at the left or the right edge. With augmentation, KEYWORD
    and OTHER words get a neighbour from `neighbour_pool` (ClipBank indices of words that are
    not keywords) with the settings' neighbour_probability, drawn after everything else so that
    switching neighbours on leaves every other draw unchanged.
    """
    sources = np.asarray(sources, dtype=np.int64)
    count = len(sources)
    kinds = np.full(count, KEYWORD, np.int64) if kinds is None else np.asarray(kinds, np.int64)
    is_word = sources >= 0
    # Silence (-1) has no length; an all-silence batch may come with an empty bank.
    lengths = np.where(is_word, bank.lengths[np.maximum(sources, 0)], 0) if is_word.any() else np.zeros(count)
    ones = np.ones(count, np.float32)
    if augment:
        gains = _uniform(rng, settings.loudness_range, count).astype(np.float32)
        speeds = _uniform(rng, settings.speed_range, count).astype(np.float32)
        semitones = _uniform(rng, settings.pitch_semitones_range, count)
        pitches = (2.0 ** (semitones / 12.0)).astype(np.float32)
        played = np.minimum(np.ceil(lengths / speeds), window).astype(np.int64)
        offsets = _stream_offsets(rng, settings, kinds, played, window)
        noisy = rng.random(count) < settings.noise_probability
        if settings.snr_db_range is None:
            noise_gains = np.where(noisy, _uniform(rng, settings.noise_factor_range, count), 0.0)
        else:
            snr_db = _uniform(rng, settings.snr_db_range, count)
            speech = gains * bank.levels[np.maximum(sources, 0)] if is_word.any() else np.zeros(count)
            noise_gains = np.where(noisy & is_word, speech / 10 ** (snr_db / 20), 0.0)  # / noise RMS below
        warm = rng.random(count) < settings.warm_up_probability
    else:
        gains, speeds, pitches = ones, ones.copy(), ones.copy()
        offsets = np.floor(word_offset * np.maximum(window - lengths, 0)).astype(np.int64)
        noise_gains = np.zeros(count)
        warm = np.zeros(count, bool)
    n_silence = int((~is_word).sum())
    if n_silence:
        low, high = settings.silence_gain_range
        silence_gains = np.exp(_uniform(rng, (np.log(low), np.log(high)), n_silence))
        near_zero = rng.random(n_silence) < settings.silence_near_zero_fraction
        silence_gains[near_zero] = low * rng.random(int(near_zero.sum())) * 0.1
        noise_gains = noise_gains.astype(np.float64)
        noise_gains[~is_word] = silence_gains
    needs_noise = noise_gains > 0
    if needs_noise.any() and (noise is None or len(noise) == 0):
        raise ValueError("augmentation needs background noise but the dataset has no noise recordings")
    noise_starts = np.zeros(count, np.int64)
    if needs_noise.any():
        noise_starts = noise.draw_starts(rng, count, window + warm_up)
        if augment and settings.snr_db_range is not None:
            words_at_snr = is_word & needs_noise
            noise_gains = noise_gains.astype(np.float64)
            noise_gains[words_at_snr] /= np.maximum(noise.rms_at(noise_starts[words_at_snr]), 1e-9)
    neighbours = np.full(count, -1, np.int64)
    neighbour_offsets = np.zeros(count, np.int64)
    neighbour_gains = np.zeros(count, np.float32)
    pool = np.zeros(0, np.int64) if neighbour_pool is None else np.asarray(neighbour_pool, np.int64)
    if augment and settings.neighbour_probability > 0 and pool.size:
        eligible = is_word & ((kinds == KEYWORD) | (kinds == OTHER))
        chosen = np.flatnonzero(eligible & (rng.random(count) < settings.neighbour_probability))
        neighbours[chosen] = pool[rng.integers(0, pool.size, chosen.size)]
        gap = np.round(_uniform(rng, settings.neighbour_gap_ms_range, chosen.size) * (SAMPLE_RATE / 1000))
        neighbour_played = np.ceil(bank.lengths[neighbours[chosen]] / speeds[chosen])
        # The word plays from its offset for ceil(length / speed) samples (cut by the window).
        word_played = np.ceil(lengths[chosen] / speeds[chosen])
        before = rng.random(chosen.size) < 0.5
        neighbour_offsets[chosen] = np.where(
            before, offsets[chosen] - gap - neighbour_played, offsets[chosen] + word_played + gap
        ).astype(np.int64)
        # As loud as the word (same active-speech level), times a loudness draw of its own.
        level_ratio = bank.levels[sources[chosen]] / np.maximum(bank.levels[neighbours[chosen]], 1e-9)
        loudness = _uniform(rng, settings.loudness_range, chosen.size)
        neighbour_gains[chosen] = (gains[chosen] * level_ratio * loudness).astype(np.float32)
    silent_until = np.where(warm, 0, warm_up).astype(np.int64)
    if augment and settings.noise_onset_probability > 0 and noise is not None and len(noise):
        quiet = np.flatnonzero(
            is_word & (noise_gains == 0) & (rng.random(count) < settings.noise_onset_probability)
        )
        snr_db = _uniform(rng, settings.noise_onset_snr_db_range, quiet.size)
        lead = np.round(_uniform(rng, settings.noise_onset_lead_ms_range, quiet.size) * (SAMPLE_RATE / 1000))
        starts = noise.draw_starts(rng, quiet.size, window + warm_up)
        speech = gains[quiet] * bank.levels[sources[quiet]]
        noise_starts[quiet] = starts
        noise_gains = noise_gains.astype(np.float64)
        noise_gains[quiet] = speech / 10 ** (snr_db / 20) / np.maximum(noise.rms_at(starts), 1e-9)
        # Buffer positions: the first word (or its neighbour before it) starts where it is placed.
        first = offsets[quiet] + warm_up
        before = neighbours[quiet] >= 0
        first[before] = np.minimum(first[before], neighbour_offsets[quiet][before] + warm_up)
        silent_until[quiet] = np.maximum(silent_until[quiet], first - lead.astype(np.int64))
    return Plan(
        sources,
        offsets + warm_up,
        gains.astype(np.float32),
        speeds.astype(np.float32),
        pitches.astype(np.float32),
        noise_starts,
        noise_gains.astype(np.float32),
        silent_until,
        kinds == REVERSED,
        neighbours,
        neighbour_offsets + warm_up,
        neighbour_gains,
    )


def _stream_offsets(
    rng: np.random.Generator,
    settings: AugmentationSettings,
    kinds: np.ndarray,
    played: np.ndarray,
    window: int,
) -> np.ndarray:
    """Where each word starts relative to the window (negative: its start lies before the window)."""
    count = len(kinds)
    is_other = (kinds == OTHER) | (kinds == REVERSED)
    visible_min = np.where(is_other, settings.other_visible_min, settings.keyword_visible_min)
    # Whole words (visible_min 1) land in [0, room] exactly as MLTK's offset_range draws them.
    lower = -np.floor((1.0 - visible_min) * played)
    if settings.keyword_start_inside:
        lower[kinds == KEYWORD] = 0
    upper = window - np.ceil(visible_min * played)
    draw = _uniform(rng, settings.offset_range, count)
    offsets = np.floor(lower + draw * np.maximum(upper - lower, 0)).astype(np.int64)
    if settings.keyword_end_range is not None:
        keywords = kinds == KEYWORD
        # The same draw, rescaled to the end range: switching it on moves no other window.
        low, high = settings.offset_range
        share = (draw[keywords] - low) / (high - low) if high > low else np.full(int(keywords.sum()), 0.5)
        first, last = settings.keyword_end_range
        ends = np.round((first + share * (last - first)) * window)
        wanted = ends - played[keywords]
        offsets[keywords] = np.clip(wanted, lower[keywords], np.maximum(upper[keywords], lower[keywords]))
    fragments = np.flatnonzero(kinds == FRAGMENT)
    if fragments.size:
        shown = _uniform(rng, settings.fragment_visible_range, fragments.size) * played[fragments]
        cut_start = rng.random(fragments.size) < 0.5  # the window shows the word's end, else its start
        offsets[fragments] = np.where(
            cut_start, -(played[fragments] - np.round(shown)), window - np.round(shown)
        ).astype(np.int64)
    return offsets


@numba.njit(cache=True, inline="always")
def _sample(audio, start, length, position, backwards):  # linear interpolation inside one clip
    if position < 0.0 or position > length - 1:
        return 0.0
    if backwards:
        position = length - 1 - position
    k = int(position)
    frac = position - k
    a = np.float32(audio[start + k])
    b = np.float32(audio[start + min(k + 1, length - 1)])
    return a + frac * (b - a)


@numba.njit(cache=True, inline="always")
def _add_word(mixed, audio, start, length, offset, speed, gain, backwards, first, end):  # mixed[first:end]
    # Past the word's last sample (+ a step for rounding) `_sample` returns zero: stop there.
    last = min(end, offset + int((length - 1) / speed) + 2)
    for t in range(max(offset, first), last):
        mixed[t] += gain * _sample(audio, start, length, (t - offset) * speed, backwards)


@numba.njit(parallel=True, cache=True)
def _render(
    bank_audio,
    bank_starts,
    bank_lengths,
    sources,
    offsets,
    gains,
    speeds,
    pitches,
    noise_audio,
    noise_starts,
    noise_gains,
    silent_until,
    reversed_,
    neighbour_sources,
    neighbour_offsets,
    neighbour_gains,
    out,
):
    n_clips, window = out.shape
    for i in numba.prange(n_clips):
        mixed = np.zeros(window, np.float32)
        # Samples before `silent` end up zero, so nothing is mixed there (and `_add_word` stops
        # at the word's end): both only skip work, the output is the same to the bit
        # (tests/data/test_augmentation.py).
        silent = min(max(silent_until[i], 0), window)
        source = sources[i]
        if source >= 0:
            start = bank_starts[source]
            length = bank_lengths[source]
            offset = offsets[i]
            speed = speeds[i]
            pitch = pitches[i]
            gain = gains[i]
            backwards = reversed_[i]
            if pitch == 1.0:
                _add_word(mixed, bank_audio, start, length, offset, speed, gain, backwards, silent, window)
            else:
                # Grains read at `pitch` times the rate from where they sit in time, overlap-added
                # with hann windows (sum 2 at 75% overlap): pitch changes, duration does not.
                first = offset - GRAIN
                last = min(window, offset + int(length / speed) + GRAIN)  # grains past the word are silent
                for grain_start in range(first - first % GRAIN_HOP, last, GRAIN_HOP):
                    anchor = (grain_start - offset) * speed
                    for j in range(
                        max(0, offset - grain_start, -grain_start), min(GRAIN, window - grain_start)
                    ):
                        value = _sample(bank_audio, start, length, anchor + j * speed * pitch, backwards)
                        mixed[grain_start + j] += _GRAIN_WINDOW[j] * gain * value
            neighbour = neighbour_sources[i]
            if neighbour >= 0:
                n_start, n_length = bank_starts[neighbour], bank_lengths[neighbour]
                n_offset, n_gain = neighbour_offsets[i], neighbour_gains[i]
                _add_word(
                    mixed, bank_audio, n_start, n_length, n_offset, speed, n_gain, False, silent, window
                )
        noise_gain = noise_gains[i]
        if noise_gain != 0.0:
            noise_start = noise_starts[i]
            for t in range(silent, window):
                mixed[t] += noise_gain * noise_audio[noise_start + t]
        for t in range(silent):
            mixed[t] = 0.0
        for t in range(window):
            value = np.round(mixed[t])
            out[i, t] = min(max(value, -32768.0), 32767.0)


def render(plan: Plan, bank: ClipBank, noise: NoiseBank | None, window: int) -> np.ndarray:
    """The planned clips as int16 (len(plan), window), all cores."""
    out = np.empty((len(plan), window), dtype=np.int16)
    noise_audio = noise.audio if noise is not None and len(noise) else np.zeros(window, np.float32)
    _render(
        bank.audio,
        bank.starts,
        bank.lengths,
        plan.sources,
        plan.offsets,
        plan.gains,
        plan.speeds,
        plan.pitches,
        noise_audio,
        plan.noise_starts,
        plan.noise_gains,
        plan.silent_until,
        plan.reversed,
        plan.neighbour_sources,
        plan.neighbour_offsets,
        plan.neighbour_gains,
        out,
    )
    return out


def mask_features(
    features: np.ndarray, rng: np.random.Generator, settings: AugmentationSettings
) -> np.ndarray:
    """SpecAugment-style time and frequency masks on (N, frames, channels) features, as a new array.

    Each clip gets its own band widths (uniform in 0..max) and starts; masked cells take the
    clip's mean value (a zero-width band masks nothing). The input is left unchanged.
    """
    count, frames, channels = features.shape
    fill = features.reshape(count, -1).mean(axis=1).round().astype(features.dtype)[:, None, None]
    masked = np.zeros(features.shape, dtype=bool)
    for n_bands, max_width, size, axis in (
        (settings.time_mask_count, settings.time_mask_max_frames, frames, 1),
        (settings.freq_mask_count, settings.freq_mask_max_channels, channels, 2),
    ):
        positions = np.arange(size)[None, :]
        for _ in range(n_bands if max_width > 0 else 0):
            widths = rng.integers(0, min(max_width, size) + 1, count)
            starts = rng.integers(0, size - widths + 1)  # the band lies inside the window
            band = (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
            masked |= band[:, :, None] if axis == 1 else band[:, None, :]
    return np.where(masked, fill, features)
