"""Streams by condition: clean segments, one segment per SNR, keyword-free streams for mining."""

from __future__ import annotations

import math

import numpy as np
import pytest

from microspeech.data.streams import CLEAN, build_stream, concatenate_streams, stream_from_dataset

CLASSES = ["yes", "no", "_unknown_", "_silence_"]


def _clips(word: str, count: int, amplitude: float) -> list:
    rng = np.random.default_rng(len(word))
    return [
        (word, f"{word}{i}", lambda a=amplitude, i=i: (a * rng.standard_normal(8000)).astype(np.int16))
        for i in range(count)
    ]


def test_a_clean_stream_has_digital_silence_between_the_words():
    noise = [np.random.default_rng(0).standard_normal(40000) * 1000]
    stream = build_stream(
        _clips("yes", 3, 2000), _clips("go", 3, 2000), noise, minutes=0.5, snr_db=CLEAN, seed=1
    )
    assert stream.noise_rms == 0.0
    silent = np.ones(len(stream.audio), bool)
    for event in stream.events:
        silent[event.start : event.start + event.length] = False
        assert math.isinf(event.snr_db)
    assert np.all(stream.audio[silent] == 0) and np.abs(stream.audio[~silent]).max() > 0
    with pytest.raises(ValueError, match="clean"):
        build_stream(_clips("yes", 3, 2000), [], noise, minutes=0.5, snr_db=[CLEAN, 10.0], seed=1)
    with pytest.raises(ValueError, match="number of dB"):
        build_stream(_clips("yes", 3, 2000), [], noise, minutes=0.5, snr_db=math.nan, seed=1)


def test_concatenated_segments_keep_every_event_at_its_place():
    noise = [np.random.default_rng(0).standard_normal(40000) * 1000]
    first = build_stream(_clips("yes", 2, 2000), [], noise, minutes=0.3, snr_db=10.0, seed=1)
    second = build_stream(_clips("no", 2, 2000), [], noise, minutes=0.3, snr_db=20.0, seed=2)
    joined = concatenate_streams([first, second])
    assert len(joined.audio) == len(first.audio) + len(second.audio)
    shifted = joined.events[len(first.events)]
    assert shifted.start == second.events[0].start + len(first.audio) and shifted.snr_db == 20.0
    np.testing.assert_array_equal(joined.audio[len(first.audio) :], second.audio)


def test_segmented_dataset_streams_and_keyword_free_streams(subset_dir):
    conditions = [CLEAN, 20.0, 0.0]
    stream, _, _ = stream_from_dataset(
        str(subset_dir),
        CLASSES,
        minutes=1.5,
        snr_db=conditions,
        seed=0,
        split="validation",
        show_progress=False,
        segmented=True,
    )
    segment = len(stream.audio) // 3
    for number, condition in enumerate(conditions):
        inside = [e for e in stream.events if number * segment <= e.start < (number + 1) * segment]
        assert inside and all(e.snr_db == condition for e in inside)
    negatives, _, _ = stream_from_dataset(
        str(subset_dir),
        CLASSES,
        minutes=0.5,
        snr_db=10.0,
        seed=0,
        split="train",
        show_progress=False,
        keyword_fraction=0.0,
    )
    assert negatives.events and not any(e.is_keyword for e in negatives.events)
    assert all(e.word not in ("yes", "no") for e in negatives.events)
