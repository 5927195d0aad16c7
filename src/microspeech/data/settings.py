"""Augmentation settings: how training windows are drawn and rendered (owned by data, used by specs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from microspeech.config import check_field_types, from_known_keys

__all__ = ["AugmentationSettings"]


@dataclass
class AugmentationSettings:
    """Training-time augmentation, drawn anew every epoch; validation/test get none."""

    trim_threshold_db: float = 20.0
    # Where the trimmed word starts, as a fraction of the room left in the window
    # (MLTK's offset_range): (0, 0) left-aligns like evaluation, (0, 1) is anywhere.
    offset_range: tuple[float, float] = (0.0, 1.0)
    noise_probability: float = 1.0
    noise_factor_range: tuple[float, float] = (0.0, 0.3)
    # Optional ranges; (1, 1) switches one off.
    loudness_range: tuple[float, float] = (1.0, 1.0)
    speed_range: tuple[float, float] = (1.0, 1.0)
    pitch_semitones_range: tuple[float, float] = (0.0, 0.0)
    # `_silence_` clips: noise slices scaled by a gain drawn log-uniformly from this range,
    # with this fraction at near-zero gain (so quiet rooms are silence too).
    silence_gain_range: tuple[float, float] = (0.01, 1.0)
    silence_near_zero_fraction: float = 0.1
    # SpecAugment-style masks on the int8 features: each clip gets `time_mask_count` bands of
    # 0..time_mask_max_frames frames and `freq_mask_count` bands of 0..freq_mask_max_channels
    # channels (widths and starts drawn per clip), filled with the clip's mean feature value.
    time_mask_count: int = 0
    time_mask_max_frames: int = 0
    freq_mask_count: int = 0
    freq_mask_max_channels: int = 0
    # Stream-like windows (all off by default: MLTK's clips, a fresh frontend per clip).
    # Audio rendered before the window (a multiple of the frontend step): the frontend runs
    # over it and the window's features are its last frames, warm as on a stream. A
    # `warm_up_probability` share of windows gets it; the rest start from a fresh frontend at
    # the window (digital silence rendered before it, which the frontend skips), as after the
    # firmware resets it on a detection.
    warm_up_ms: int = 0
    warm_up_probability: float = 1.0
    # Noise for word windows at a speech-to-noise ratio (active-speech RMS over the noise
    # recording's RMS) drawn from this range, instead of `noise_factor_range`; windows without
    # noise (1 - noise_probability) are clean. None keeps the noise factor.
    snr_db_range: tuple[float, float] | None = None
    # The labelling rule for words cut by the window's edges: a keyword window keeps its
    # keyword label with at least `keyword_visible_min` of the trimmed word inside (the rest
    # before or after the window); other words are `_unknown_` with `other_visible_min` inside.
    keyword_visible_min: float = 1.0
    other_visible_min: float = 1.0
    # With `keyword_start_inside`, only a keyword's end may lie outside the window (a word still
    # being spoken), never its start: a "no" without its "n" is the "o" of "go", and labelled
    # "no" it teaches the model to ignore the consonant that tells them apart.
    keyword_start_inside: bool = False
    # Where a keyword window holds its keyword: the trimmed word's end at a fraction of the
    # window drawn from this range (0: the window's start, 1: its end), kept within the
    # labelling rule above; None places keywords anywhere `offset_range` puts them. A model
    # whose last layer sees every frame position apart (a dense layer over the flattened
    # features) then learns the keyword at one place, which a stream passes through at every
    # inference hop, instead of at every place at once. For the seed model it lost keywords on
    # the validation stream (BENCHMARKS.md, "Keywords at one place in the window").
    keyword_end_range: tuple[float, float] | None = None
    # Keyword fragments labelled `_unknown_`: fragment_ratio x the mean keyword count per
    # epoch, each showing a `fragment_visible_range` share of the word at one window edge.
    fragment_ratio: float = 0.0
    fragment_visible_range: tuple[float, float] = (0.15, 0.5)
    # Words played backwards labelled `_unknown_`: reversed_ratio x the mean keyword count per
    # epoch, drawn from every training word (keywords too), placed like other words. Backwards
    # speech has speech's spectra without its words: negatives unlike the few words a dataset has.
    reversed_ratio: float = 0.0
    # A second word beside the window's word, as in continuous speech: with
    # `neighbour_probability`, a keyword or other-word window also holds a word that is not a
    # keyword, ending `neighbour_gap_ms_range` before its word starts or starting as long after
    # it ends, about as loud, cut where it falls outside the rendered audio (before the window it
    # is part of the warm-up). The window keeps its word's label: two other words make an
    # `_unknown_` window, a keyword with a neighbour stays the keyword.
    neighbour_probability: float = 0.0
    neighbour_gap_ms_range: tuple[float, float] = (50.0, 400.0)
    # A recording's own room noise after digital silence: with `noise_onset_probability`, a word
    # window without background noise gets a quiet noise bed (`noise_onset_snr_db_range` under
    # the word's active speech) that starts abruptly `noise_onset_lead_ms_range` before the
    # first word in it, digital silence before that, as a whole clip played after silence
    # sounds (the trimmed training words carry almost none of their room noise). Needs
    # `snr_db_range`; drawn after everything else, so switching it on moves no other draw.
    noise_onset_probability: float = 0.0
    noise_onset_snr_db_range: tuple[float, float] = (20.0, 60.0)
    noise_onset_lead_ms_range: tuple[float, float] = (0.0, 500.0)

    def __post_init__(self) -> None:
        check_field_types(self, "augmentation")  # finite numbers, (low, high) pairs, ints, flags
        if not 0.0 < self.trim_threshold_db <= 100.0:
            # The word is what lies within this many dB of its loudest frame: 0 keeps nothing.
            raise ValueError(
                f"augmentation trim_threshold_db={self.trim_threshold_db!r}: must be above 0 and at most 100"
            )
        if self.noise_factor_range[0] < 0:
            raise ValueError(f"augmentation noise_factor_range={self.noise_factor_range}: must be >= 0")
        if self.silence_gain_range[0] <= 0:  # drawn log-uniformly: a gain of 0 has no logarithm
            raise ValueError(
                f"augmentation silence_gain_range={self.silence_gain_range}: must be above 0 "
                "(silence_near_zero_fraction gives near-zero gains)"
            )
        ranges = (
            "offset_range",
            "noise_factor_range",
            "loudness_range",
            "speed_range",
            "pitch_semitones_range",
            "silence_gain_range",
            "fragment_visible_range",
            "neighbour_gap_ms_range",
            "noise_onset_snr_db_range",
            "noise_onset_lead_ms_range",
        )
        if self.snr_db_range is not None:
            ranges += ("snr_db_range",)
        if self.keyword_end_range is not None:
            if not 0.0 <= self.keyword_end_range[0] <= self.keyword_end_range[1] <= 1.0:
                raise ValueError(
                    f"augmentation keyword_end_range={self.keyword_end_range} must be (low, high) "
                    "with 0 <= low <= high <= 1"
                )
        for name in ranges:
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"augmentation {name}={getattr(self, name)} has low > high")
        if not 0.0 <= self.offset_range[0] <= self.offset_range[1] <= 1.0:
            raise ValueError(f"augmentation offset_range={self.offset_range} must lie within [0, 1]")
        if self.speed_range[0] <= 0 or self.loudness_range[0] < 0:
            raise ValueError("augmentation speed_range must be > 0 and loudness_range >= 0")
        masks = ("time_mask_count", "time_mask_max_frames", "freq_mask_count", "freq_mask_max_channels")
        for name in masks:
            if getattr(self, name) < 0:
                raise ValueError(f"augmentation {name} must be >= 0, got {getattr(self, name)}")
        if self.warm_up_ms < 0 or self.fragment_ratio < 0 or self.reversed_ratio < 0:
            raise ValueError("augmentation warm_up_ms, fragment_ratio and reversed_ratio must be >= 0")
        if not 0.0 < self.keyword_visible_min <= 1.0 or not 0.0 < self.other_visible_min <= 1.0:
            raise ValueError("augmentation keyword_visible_min and other_visible_min must be in (0, 1]")
        if not 0.0 < self.fragment_visible_range[0] <= self.fragment_visible_range[1] < 1.0:
            raise ValueError(
                f"augmentation fragment_visible_range={self.fragment_visible_range} must lie in (0, 1)"
            )
        if self.fragment_ratio and self.fragment_visible_range[1] >= self.keyword_visible_min:
            raise ValueError(
                "augmentation fragment_visible_range must stay below keyword_visible_min: "
                "a window cannot be both a keyword and a fragment"
            )
        if self.neighbour_gap_ms_range[0] < 0:
            raise ValueError(
                f"augmentation neighbour_gap_ms_range={self.neighbour_gap_ms_range} must be >= 0"
            )
        if self.noise_onset_lead_ms_range[0] < 0:
            raise ValueError(
                f"augmentation noise_onset_lead_ms_range={self.noise_onset_lead_ms_range} must be >= 0"
            )
        if self.noise_onset_probability and self.snr_db_range is None:
            raise ValueError(
                "augmentation noise_onset_probability needs snr_db_range (the bed's level is an SNR)"
            )
        probabilities = ("noise_probability", "silence_near_zero_fraction", "warm_up_probability")
        for name in (*probabilities, "neighbour_probability", "noise_onset_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augmentation {name} must be in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AugmentationSettings:
        return from_known_keys(cls, values)
