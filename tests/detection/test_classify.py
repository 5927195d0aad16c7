"""The firmware loop (KeywordSpotter) on real clips with MLTK's shipped tflite_micro_speech model."""

import dataclasses

import numpy as np
import pytest

from microspeech.audio import SAMPLE_RATE, fit_length
from microspeech.data import load_dataset
from microspeech.detection.classify import (
    KeywordSpotter,
    apply_volume_gain,
    detection_params_with,
    wrapped_samples,
)
from microspeech.detection.detector import replay, scores_to_uint8
from microspeech.detection.params import DetectionParams
from microspeech.detection.stream_run import run_stream
from microspeech.frontend import compute_features, uint16_to_int8
from microspeech.tflite.metadata import read_parameters, write_parameters

pytestmark = pytest.mark.xdist_group("mltk_model")


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


def test_one_second_from_a_fresh_start_equals_clip_processing(mltk_model, clips):
    # No reset: a detection at 800 ms would otherwise restart the frontend (tested below).
    spotter = KeywordSpotter(mltk_model, reset_after_detection=False)
    for word in ("yes", "no", "up"):  # "up": another word (the test set's _unknown_/ clips say theirs)
        audio = fit_length(clips[word][0], SAMPLE_RATE)
        spotter.reset()
        decisions = spotter.process(audio)
        assert [d.time_ms for d in decisions] == list(range(100, 1001, 100))
        assert np.array_equal(decisions[-1].scores_u8, clip_scores(spotter, audio))


def test_chunking_does_not_change_anything(mltk_model, clips):
    audio = np.concatenate([clips["yes"][1], clips["no"][1], clips["up"][1]])
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


def test_volume_gain_is_the_firmwares_whole_factor_wrapping_at_the_int16_limits():
    """MLTK's audio feature generator stores `sample * audio_volume_scaler` (an int, applied when
    above 1) into its int16 audio buffer: a product beyond the int16 range keeps its low 16 bits."""
    audio = np.array([-30000, -16385, -16384, -100, 0, 100, 16383, 16384, 20000, 32767], np.int16)
    assert apply_volume_gain(audio, 2).tolist() == [
        5536, 32766, -32768, -200, 0, 200, 32766, -32768, -25536, -2
    ]
    assert wrapped_samples(audio, 2) == 5
    for gain in (0, 1, 0.5, 1.9):  # nothing above 1 after C's float-to-int conversion
        assert apply_volume_gain(audio, gain) is audio and wrapped_samples(audio, gain) == 0
    assert apply_volume_gain(audio, 2.7).tolist() == apply_volume_gain(audio, 2).tolist()
    # The C store written out: the product's low 16 bits as two's complement, for every sample.
    everything = np.arange(-32768, 32768, dtype=np.int16)
    for factor in (2, 3, 7, 1000):
        product = everything.astype(np.int64) * factor
        expected = ((product + 32768) % 65536 - 32768).astype(np.int16)
        np.testing.assert_array_equal(apply_volume_gain(everything, factor), expected)
        assert wrapped_samples(everything, factor) == int(np.count_nonzero(expected != product))


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


def test_a_spotters_parameters_are_its_own_and_a_dict_changes_the_models(mltk_model):
    import dataclasses

    first, second = KeywordSpotter(mltk_model), KeywordSpotter(mltk_model)
    # One shared DetectionParams, edited in place, changed every spotter and the model, unchecked.
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.params.detection_threshold = 999  # type: ignore[misc]
    first.set_params(dataclasses.replace(first.params, detection_threshold=200, latency_ms=200))
    assert (first.params.detection_threshold, first.hop_samples) == (200, 3200)
    assert second.params.detection_threshold == mltk_model.detection.detection_threshold == 185
    # A dict (AttributeError deep inside before) changes the parameters it names.
    third = KeywordSpotter(mltk_model, {"detection_threshold": 150})
    assert third.params == dataclasses.replace(mltk_model.detection, detection_threshold=150)
    third.set_params({"minimum_count": 1})
    assert (third.params.detection_threshold, third.params.minimum_count) == (150, 1)
    with pytest.raises(ValueError, match="unknown detection parameter.*thresold"):
        KeywordSpotter(mltk_model, {"thresold": 3})
    with pytest.raises(TypeError, match="expected DetectionParams or a dict"):
        KeywordSpotter(mltk_model, [185])


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


def test_audio_is_taken_as_the_streaming_frontend_takes_it(mltk_model, clips):
    # float and int32 audio were refused here while StreamingFrontend.process converted them.
    from microspeech.audio import AudioError

    audio = np.concatenate([clips["yes"][0], clips["no"][0]])
    as_int16 = [d.scores_u8.tolist() for d in KeywordSpotter(mltk_model).process(audio)]
    as_float = [d.scores_u8.tolist() for d in KeywordSpotter(mltk_model).process(audio / 32768.0)]
    wide = audio.astype(np.int32) << 16
    as_int32 = [d.scores_u8.tolist() for d in KeywordSpotter(mltk_model).process(wide)]
    assert as_int16 and as_float == as_int16 and as_int32 == as_int16
    spotter = KeywordSpotter(mltk_model)
    assert spotter.process(np.zeros(0, np.float32)) == []
    with pytest.raises(ValueError, match="expected 1-D mono audio"):
        spotter.process(np.zeros((100, 2), np.int16))
    with pytest.raises(AudioError, match="audio: unsupported sample type int64"):
        spotter.process(np.zeros(100, np.int64))


def test_a_threshold_given_replaces_the_models_per_class_list(mltk_model, tmp_path):
    # KeywordSpotter(model, {"detection_threshold": 250}) and set_params() kept a stored list
    # deciding, so the threshold changed nothing; classify_audio --threshold dropped it.
    from microspeech.detection.keyword_model import load_keyword_model

    listed = {**read_parameters(mltk_model.tflite_bytes), "detection_threshold_list": [120, 120, 255, 255]}
    path = tmp_path / "listed.tflite"
    path.write_bytes(write_parameters(mltk_model.tflite_bytes, listed))
    model = load_keyword_model(path)
    assert KeywordSpotter(model).recognizer.class_thresholds is not None  # the model's own list
    spotter = KeywordSpotter(model, {"detection_threshold": 250})
    assert spotter.recognizer.class_thresholds is None and spotter.params.detection_threshold == 250
    spotter.set_params({"average_window_duration_ms": 500})  # no threshold named: the list again
    assert spotter.recognizer.class_thresholds is not None
    spotter.set_params({"detection_threshold": 240})
    assert spotter.recognizer.class_thresholds is None
    # DetectionParams: its threshold was ignored for the list; the model's own keeps the list.
    spotter.set_params(dataclasses.replace(model.detection, detection_threshold=255))
    assert spotter.recognizer.class_thresholds is None and spotter.params.detection_threshold == 255
    assert KeywordSpotter(model, model.detection).recognizer.class_thresholds is not None
    with pytest.raises(ValueError, match="class_thresholds='none'"):
        spotter.set_params({}, class_thresholds="none")
