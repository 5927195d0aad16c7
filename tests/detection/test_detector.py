"""MLTK's RecognizeCommands rule on hand-made score sequences (0-255 scale unless stated)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microspeech.detection.detector import (
    MAX_RESULT_COUNT,
    CommandRecognizer,
    CompiledRecognizer,
    replay,
    scores_to_uint8,
    window_averages,
)
from microspeech.detection.params import DetectionParams

CLASSES = ["yes", "no", "_unknown_", "_silence_"]


def u8(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint8)


def run(recognizer: CommandRecognizer, steps: list[tuple[int, np.ndarray]]) -> list[tuple[int, str, int]]:
    """Feed (time, scores) pairs; return (time, label, score) of each detection."""
    found = []
    for time_ms, scores in steps:
        decision = recognizer.process(scores, time_ms)
        if decision.is_detection:
            found.append((time_ms, decision.label, decision.score))
    return found


def params(**overrides) -> DetectionParams:
    values = dict(
        average_window_duration_ms=1000, detection_threshold=185, suppression_ms=750, minimum_count=3
    )
    values.update(overrides)
    return DetectionParams(**values)


def test_int8_outputs_shift_by_128_and_floats_scale_by_255():
    assert scores_to_uint8(np.array([-128, -1, 0, 57, 127], np.int8)).tolist() == [0, 127, 128, 185, 255]
    assert scores_to_uint8(np.array([0.0, 0.73, 1.0], np.float32)).tolist() == [0, 186, 255]
    assert scores_to_uint8(u8(3, 200)).tolist() == [3, 200]
    with pytest.raises(ValueError, match="int32"):
        scores_to_uint8(np.array([1], np.int32))


def test_threshold_is_strict_and_averages_use_integer_division():
    # 200 and 171 average to 185.5 -> 185 (integer division): not above 185.
    rec = CommandRecognizer(CLASSES, params(minimum_count=2))
    assert run(rec, [(1000, u8(200, 0, 55, 0)), (1100, u8(171, 0, 84, 0))]) == []
    rec = CommandRecognizer(CLASSES, params(minimum_count=2))
    assert run(rec, [(1000, u8(200, 0, 55, 0)), (1100, u8(173, 0, 82, 0))]) == [(1100, "yes", 186)]


def test_int8_model_output_reaches_the_threshold_the_same_way():
    rec = CommandRecognizer(CLASSES, params(minimum_count=1, average_window_duration_ms=50))
    assert not rec.process(np.array([57, -128, -128, -128], np.int8), 1000).is_detection  # 185
    assert rec.process(np.array([-128, 58, -128, -128], np.int8), 1100).is_detection  # 186


def test_minimum_count_holds_back_until_enough_results():
    rec = CommandRecognizer(CLASSES, params(minimum_count=3))
    first = rec.process(u8(250, 0, 5, 0), 1000)
    assert (first.is_detection, first.score, first.averages, first.class_index) == (False, 0, None, 0)
    assert not rec.process(u8(250, 0, 5, 0), 1100).is_detection
    third = rec.process(u8(250, 0, 5, 0), 1200)
    assert third.is_detection and third.score == 250 and third.averages.tolist() == [250, 0, 5, 0]


def test_minimum_count_zero_uses_only_the_latest_result():
    rec = CommandRecognizer(CLASSES, params(minimum_count=0))
    assert run(rec, [(1000, u8(10, 0, 245, 0)), (1100, u8(0, 240, 15, 0))]) == [(1100, "no", 240)]


def test_window_keeps_results_exactly_window_old_and_drops_older():
    rec = CommandRecognizer(CLASSES, params(average_window_duration_ms=300, minimum_count=1))
    for time_ms, yes in [(1000, 0), (1100, 200), (1200, 200)]:
        rec.process(u8(yes, 0, 255 - yes, 0), time_ms)
    # At 1300 ms the result from 1000 ms is exactly 300 ms old: kept, (0+200+200+200)//4 = 150.
    assert rec.process(u8(200, 0, 55, 0), 1300).score == 150
    # At 1400 ms it is 400 ms old: dropped, the window is all 200s.
    at_1400 = rec.process(u8(200, 0, 55, 0), 1400)
    assert at_1400.score == 200 and at_1400.is_detection


def test_window_expiry_lets_an_old_burst_fade():
    rec = CommandRecognizer(
        CLASSES, params(average_window_duration_ms=500, minimum_count=1, detection_threshold=150)
    )
    steps = [(t, u8(255, 0, 0, 0) if t <= 1200 else u8(0, 0, 255, 0)) for t in range(1000, 2100, 100)]
    decisions = [rec.process(scores, t) for t, scores in steps]
    by_time = {d.time_ms: d for d in decisions}
    assert by_time[1700].averages[0] == 255 * 1 // 6  # only the 1200 result is still within 500 ms
    assert by_time[1800].averages[0] == 0
    assert [d.time_ms for d in decisions if d.is_detection] == [1000]


def test_same_label_is_suppressed_until_strictly_after_suppression_ms():
    rec = CommandRecognizer(CLASSES, params(minimum_count=1, suppression_ms=750))
    steps = [(t, u8(0, 250, 5, 0)) for t in (1000, 1100, 1750, 1800)]
    # 1750 - 1000 = 750 is not > 750; 1800 is.
    assert [t for t, _, _ in run(rec, steps)] == [1000, 1800]


def test_class_change_inside_suppression_is_detected_at_once():
    rec = CommandRecognizer(CLASSES, params(minimum_count=1, average_window_duration_ms=50))
    steps = [
        (1000, u8(250, 0, 5, 0)),
        (1100, u8(0, 250, 5, 0)),
        (1200, u8(250, 0, 5, 0)),
        (1300, u8(250, 0, 5, 0)),
    ]
    assert run(rec, steps) == [(1000, "yes", 250), (1100, "no", 250), (1200, "yes", 250)]


def test_underscore_labels_are_never_detected_and_do_not_reset_suppression():
    rec = CommandRecognizer(CLASSES, params(minimum_count=1, average_window_duration_ms=50))
    steps = [
        (1000, u8(0, 250, 5, 0)),
        (1100, u8(0, 0, 255, 0)),
        (1200, u8(0, 0, 0, 255)),
        (1300, u8(0, 250, 5, 0)),
    ]
    # The _unknown_/_silence_ tops are not detections, so "no" at 1300 is still suppressed.
    assert run(rec, steps) == [(1000, "no", 250)]


def test_firmware_starts_as_if_class_zero_was_detected_at_time_zero():
    rec = CommandRecognizer(CLASSES, params(minimum_count=1, average_window_duration_ms=50))
    assert run(rec, [(700, u8(250, 0, 5, 0)), (751, u8(250, 0, 5, 0))]) == [(751, "yes", 250)]
    rec = CommandRecognizer(CLASSES, params(minimum_count=1))
    assert run(rec, [(700, u8(0, 250, 5, 0))]) == [(700, "no", 250)]


def test_ties_go_to_the_lower_class_index():
    rec = CommandRecognizer(CLASSES, params(minimum_count=1, suppression_ms=0))
    decision = rec.process(u8(190, 190, 0, 0), 1000)
    assert decision.label == "yes" and decision.is_detection


def test_per_class_thresholds_replace_the_global_one():
    rec = CommandRecognizer(
        CLASSES, params(minimum_count=1, average_window_duration_ms=50), class_thresholds=[240, 100, 255, 255]
    )
    assert run(rec, [(1000, u8(230, 0, 25, 0)), (1100, u8(0, 120, 135, 0))]) == []  # _unknown_ on top at 1100
    assert run(rec, [(1200, u8(0, 150, 105, 0))]) == [(1200, "no", 150)]
    with pytest.raises(ValueError, match="detection_threshold_list has 2 entries"):
        CommandRecognizer(CLASSES, class_thresholds=[1, 2])
    # 150.7 was truncated to 150 and 999 accepted (nothing could ever be detected).
    for bad in (150.7, 999, -1, "many"):
        with pytest.raises(ValueError, match=f"detection_threshold_list entry {bad!r}"):
            CommandRecognizer(CLASSES, class_thresholds=[bad, 100, 255, 255])
    with pytest.raises(TypeError, match=r"classes='yes': expected a list of class labels"):
        CommandRecognizer("yes")


def test_a_reused_score_buffer_does_not_change_the_results_held():
    # An interpreter's output tensor is one buffer rewritten by every inference: the recognizer
    # held a reference to it, so its running sum subtracted the newest row instead of the oldest.
    fresh = CommandRecognizer(CLASSES, params(minimum_count=1, average_window_duration_ms=150))
    reused = CommandRecognizer(CLASSES, params(minimum_count=1, average_window_duration_ms=150))
    buffer = np.zeros(4, np.uint8)
    rows = [u8(250, 0, 0, 5), u8(0, 0, 0, 255), u8(0, 0, 0, 255), u8(0, 0, 0, 255), u8(0, 0, 0, 255)]
    for step, row in enumerate(rows):
        buffer[:] = row
        expected = fresh.process(row.copy(), 100 * step)
        got = reused.process(buffer, 100 * step)
        assert (got.label, got.score) == (expected.label, expected.score), step


def test_a_full_queue_refuses_the_newest_result():
    # A window longer than 50 results: the firmware's queue keeps the first 50.
    rec = CommandRecognizer(CLASSES, params(average_window_duration_ms=10_000, minimum_count=1))
    for step in range(MAX_RESULT_COUNT):
        rec.process(u8(0, 0, 255, 0), 10 * step)
    late = rec.process(u8(255, 0, 0, 0), 10 * MAX_RESULT_COUNT)
    assert late.averages.tolist() == [0, 0, 255, 0]


def test_bad_input_is_refused_with_a_reason():
    rec = CommandRecognizer(CLASSES)
    with pytest.raises(ValueError, match="3 scores but there are 4 classes"):
        rec.process(u8(1, 2, 3), 0)
    rec.process(u8(1, 2, 3, 4), 500)
    with pytest.raises(ValueError, match="time order"):
        rec.process(u8(1, 2, 3, 4), 400)
    with pytest.raises(ValueError, match="minimum_count"):
        DetectionParams(minimum_count=-1)


def test_reset_forgets_results_and_the_last_detection():
    rec = CommandRecognizer(CLASSES, params(minimum_count=1))
    assert run(rec, [(1000, u8(0, 250, 5, 0))])
    rec.reset()
    assert run(rec, [(0, u8(0, 250, 5, 0))]) == [(0, "no", 250)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    window=st.sampled_from([50, 300, 1000, 1200, 6000]),
    minimum_count=st.integers(0, 6),
    threshold=st.integers(100, 250),
    suppression=st.sampled_from([0, 100, 750, 1500]),
    per_class=st.booleans(),
)
def test_replay_matches_the_step_by_step_recognizer(
    seed, window, minimum_count, threshold, suppression, per_class
):
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(1, 120))
    times = np.cumsum(rng.choice([0, 50, 100, 100, 100, 130], size=steps))
    # Bursty scores so that detections actually happen.
    raw = rng.integers(-128, 128, size=(steps, 4)).astype(np.int8)
    raw[rng.random(steps) < 0.4, int(rng.integers(0, 2))] = 127
    thresholds = rng.integers(100, 250, size=4).tolist() if per_class else None
    p = params(
        average_window_duration_ms=window,
        minimum_count=minimum_count,
        detection_threshold=threshold,
        suppression_ms=suppression,
    )
    rec = CommandRecognizer(CLASSES, p, class_thresholds=thresholds)
    expected = [
        (t, d.class_index, d.score)
        for t, row in zip(times, raw, strict=True)
        if (d := rec.process(row, int(t))).is_detection
    ]
    got = [
        (d.time_ms, d.class_index, d.score)
        for d in replay(raw, times, CLASSES, p, class_thresholds=thresholds)
    ]
    assert got == expected
    # The compiled rule, fed in random pieces and resumed after each detection, decides the same.
    compiled = CompiledRecognizer(CLASSES, p, class_thresholds=thresholds)
    scores_u8 = scores_to_uint8(raw)
    ends = sorted({*rng.integers(0, steps + 1, size=4).tolist(), steps})
    pieces, start = [], 0
    for end in ends:
        while (found := compiled.next_detection(scores_u8, times, start, end)) is not None:
            start, detection = found[0] + 1, found[1]
            pieces.append((detection.time_ms, detection.class_index, detection.score))
        start = max(start, end)
    assert pieces == expected


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), window=st.sampled_from([100, 300, 500, 1000]))
def test_window_averages_are_the_recognizers_averages_at_every_step(seed, window):
    """The vectorized per-class averages equal the step-by-step queue's (window edge included)."""
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(1, 80))
    times = np.cumsum(rng.choice([0, 50, 100, 100, 130], size=steps))
    raw = rng.integers(0, 256, size=(steps, 4)).astype(np.uint8)
    recognizer = CommandRecognizer(CLASSES, params(average_window_duration_ms=window, minimum_count=1))
    expected = np.array([recognizer.process(row, int(t)).averages for t, row in zip(times, raw, strict=True)])
    np.testing.assert_array_equal(window_averages(raw, times, window), expected)


@pytest.mark.parametrize("window, latency", [(300, 100), (250, 100), (1000, 100), (5000, 20)])
def test_results_in_window_is_the_largest_minimum_count_that_can_detect(window, latency):
    # classify_audio -c 5 with a 300 ms window printed nothing at all, and said nothing.
    capacity = params(average_window_duration_ms=window, latency_ms=latency).results_in_window
    steps = [(latency * k, u8(250, 0, 0, 5)) for k in range(200)]
    for count, detects in ((capacity, True), (capacity + 1, False)):
        if count > MAX_RESULT_COUNT:  # beyond the firmware's queue: refused as a parameter
            with pytest.raises(ValueError, match="minimum_count=51 is out of range"):
                params(minimum_count=count)
            continue
        rec = CommandRecognizer(
            CLASSES, params(average_window_duration_ms=window, latency_ms=latency, minimum_count=count)
        )
        assert bool(run(rec, steps)) is detects, (count, capacity)
