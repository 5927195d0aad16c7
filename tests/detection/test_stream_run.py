"""Whole streams through the firmware loop (`run_stream`): detections at the keywords' times, and the
batched and reference-following runs equal to the plain loop."""

import numpy as np
import pytest

from microspeech.detection.classify import KeywordSpotter, detection_params_with
from microspeech.detection.stream_run import run_stream
from microspeech.evaluation.streaming import score_detections, stream_from_dataset

pytestmark = pytest.mark.xdist_group("mltk_model")


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


def test_recording_a_run_with_resets_is_refused(mltk_model):
    # record=True was ignored on a spotter with resets: no trace, and no word of it.
    from microspeech.detection.classify import KeywordSpotter

    with pytest.raises(ValueError, match="reset_after_detection=False"):
        run_stream(KeywordSpotter(mltk_model), np.zeros(16000, np.int16), record=True)
    recorded = run_stream(
        KeywordSpotter(mltk_model, reset_after_detection=False), np.zeros(16000, np.int16), record=True
    )
    assert recorded.frontend_trace is not None


def test_a_gated_models_stream_is_still_scored_for_tuning(archive, tmp_path):
    # The check above first refused gated spotters too: evaluate --streaming, tune and train's
    # calibration (all record their pass) failed for any model with activity detection on.
    import zipfile

    from microspeech.tflite.metadata import read_parameters, write_parameters

    with zipfile.ZipFile(archive) as bundle:
        data = bundle.read("tflite_micro_speech.tflite")
    gated = tmp_path / "gated.tflite"
    gated.write_bytes(write_parameters(data, {**read_parameters(data), "fe.activity_detection_enable": True}))
    spotter = KeywordSpotter(str(gated), reset_after_detection=False)
    assert spotter._gated
    run = run_stream(spotter, np.zeros(3 * 16000, np.int16), record=True)
    assert run.frontend_trace is None and run.scores.shape[1] == 4
