"""Streams by condition: clean segments, one segment per SNR, keyword-free streams for mining."""

from __future__ import annotations

import math

import numpy as np
import pytest

from microspeech.data.streams import (
    CLEAN,
    DetectionCounts,
    build_stream,
    concatenate_streams,
    rate_interval,
    stream_from_dataset,
)

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


# Garwood's exact 95% limits for a Poisson count (chi-square quantiles / 2), as tabulated.
GARWOOD_95 = {0: (0.0, 3.6889), 1: (0.0253, 5.5716), 4: (1.0899, 10.2416), 10: (4.7954, 18.3904)}


@pytest.mark.parametrize("events", sorted(GARWOOD_95))
def test_the_false_accept_rate_interval_is_the_exact_poisson_one(events):
    low, high = GARWOOD_95[events]
    assert rate_interval(events, 1.0) == pytest.approx((low, high), abs=1e-4)
    assert rate_interval(events, 2.0) == pytest.approx((low / 2, high / 2), abs=1e-4)  # per hour
    counts = DetectionCounts(hits=3, false_accepts=events, repeats=0, keywords=5, hours=0.5)
    assert counts.fa_per_hour_interval == pytest.approx((2 * low, 2 * high), abs=1e-4)
    assert counts.fa_per_hour_interval[0] <= counts.fa_per_hour < counts.fa_per_hour_interval[1]


def test_a_wider_confidence_gives_a_wider_interval_and_more_hours_a_narrower_one():
    narrow, wide = rate_interval(4, 2.0, confidence=0.8), rate_interval(4, 2.0, confidence=0.99)
    assert wide[0] < narrow[0] < 2.0 < narrow[1] < wide[1]
    longer = rate_interval(40, 20.0)  # the same 2 per hour, measured over ten times as long
    assert rate_interval(4, 2.0)[0] < longer[0] < 2.0 < longer[1] < rate_interval(4, 2.0)[1]


@pytest.mark.parametrize(("events", "hours", "confidence"), [(-1, 1.0, 0.95), (3, 0.0, 0.95), (3, 1.0, 1.0)])
def test_an_impossible_rate_interval_is_refused(events, hours, confidence):
    with pytest.raises(ValueError, match="rate_interval"):
        rate_interval(events, hours, confidence)


def test_silent_noise_is_refused_naming_its_dataset(test_set_dir, tmp_path):
    # "the background-noise recordings are all silent ..." named neither dataset nor option.
    import soundfile as sf

    from microspeech.data.streams import UnusableNoiseError, stream_from_dataset

    noise = tmp_path / "quiet" / "_background_noise_"
    noise.mkdir(parents=True)
    sf.write(noise / "zeros.wav", np.zeros(32000, np.int16), 16000, subtype="PCM_16")
    (tmp_path / "quiet" / "yes").mkdir()  # a dataset needs a word folder to load
    clip = sorted((test_set_dir / "yes").glob("*.wav"))[0]
    (tmp_path / "quiet" / "yes" / clip.name).write_bytes(clip.read_bytes())
    request = {"minutes": 0.5, "snr_db": 10, "seed": 0, "noise_dataset": str(tmp_path / "quiet")}
    classes = ["yes", "no", "_unknown_", "_silence_"]
    said = r"dataset 'quiet' \(.*quiet\): the background-noise.*--noise-dataset"
    with pytest.raises(UnusableNoiseError, match=said):
        stream_from_dataset(str(test_set_dir), classes, show_progress=False, **request)
    # Training has no --noise-dataset: it is told to add recordings instead.
    with pytest.raises(UnusableNoiseError, match=r"add background-noise recordings of 0.25 s or more"):
        stream_from_dataset(str(test_set_dir), classes, show_progress=False, noise_option=None, **request)
