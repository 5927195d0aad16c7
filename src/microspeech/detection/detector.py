"""MLTK's keyword decision rule (RecognizeCommands in its audio_classifier firmware).

Each inference result is mapped to the 0-255 scale, kept for `average_window_duration_ms`
(at most 50 results), averaged per class with integer division once `minimum_count`
results are held, and the top class is detected when its average is strictly above the
threshold, its label does not start with `_`, and it differs from the last detection or
more than `suppression_ms` have passed since it. `CommandRecognizer` is that rule step by
step; `replay` gives the same decisions for a whole recorded score sequence at once, so
threshold sweeps cost milliseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from microspeech.checks import whole_within
from microspeech.detection.params import MAX_RESULT_COUNT, DetectionParams


def scores_to_uint8(scores: np.ndarray) -> np.ndarray:
    """Map one model output to the firmware's 0-255 scale.

    int8 outputs are shifted by +128 (a softmax with scale 1/256 and zero point -128
    becomes round(p * 256) clipped to 255); float outputs are p * 255 truncated; uint8
    outputs pass through.
    """
    scores = np.asarray(scores)
    if scores.dtype == np.int8:
        return scores.view(np.uint8) ^ np.uint8(0x80)  # two's complement + 128, without widening
    if scores.dtype == np.uint8:
        return scores
    if np.issubdtype(scores.dtype, np.floating):
        return np.clip(scores.astype(np.float64) * 255.0, 0, 255).astype(np.uint8)
    raise ValueError(f"model output of type {scores.dtype} is not supported; expected int8, uint8 or float")


def check_class_thresholds(class_thresholds: Sequence[int] | None, n_classes: int) -> list[int] | None:
    """A per-class threshold list (MLTK's detection_threshold_list) as ints on the 0-255 scale, one
    per class; ValueError naming the entry otherwise (150.7 was truncated, 999 accepted)."""
    if class_thresholds is None:
        return None
    if isinstance(class_thresholds, str):
        raise ValueError(f"detection_threshold_list {class_thresholds!r}: expected a list of thresholds")
    if len(class_thresholds) != n_classes:
        raise ValueError(
            f"detection_threshold_list has {len(class_thresholds)} entries for {n_classes} classes; "
            "expected one threshold per class"
        )
    checked = []
    for value in class_thresholds:
        whole = whole_within(value, 0, 255)
        if whole is None:
            raise ValueError(f"detection_threshold_list entry {value!r}: expected a whole number 0-255")
        checked.append(whole)
    return checked


@dataclass(frozen=True)
class Decision:
    """The recognizer's answer for one inference result."""

    time_ms: int
    class_index: int  # the top class (the previous detection's while too few results are held)
    label: str
    score: int  # the top class's 0-255 average; 0 while too few results are held
    is_detection: bool
    averages: np.ndarray | None  # per-class 0-255 averages; None while too few results are held
    scores_u8: np.ndarray  # this inference's scores on the 0-255 scale


@dataclass(frozen=True)
class Detection:
    time_ms: int
    class_index: int
    label: str
    score: int


class CommandRecognizer:
    """MLTK's RecognizeCommands: smoothing, threshold and suppression over a result stream.

    `class_thresholds` is MLTK's optional `detection_threshold_list` parameter (one
    threshold per class, replacing the global one).
    """

    def __init__(
        self,
        classes: Sequence[str],
        params: DetectionParams | None = None,
        *,
        class_thresholds: Sequence[int] | None = None,
    ) -> None:
        if isinstance(classes, str):  # "yes" became the classes y, e, s
            raise TypeError(f"classes={classes!r}: expected a list of class labels, e.g. [{classes!r}]")
        self.classes = list(classes)
        if not self.classes:
            raise ValueError("the recognizer needs at least one class label")
        self.params = params or DetectionParams()
        self.class_thresholds = check_class_thresholds(class_thresholds, len(self.classes))
        self._results: deque[tuple[int, np.ndarray]] = deque()
        self.reset()

    def reset(self) -> None:
        self._results.clear()
        self._total = np.zeros(len(self.classes), dtype=np.int64)  # sum of the held results
        # The firmware starts as if class 0 had been detected at time 0.
        self._last_index = 0
        self._last_time_ms = 0
        self._last_input_time_ms: int | None = None

    def _threshold(self, index: int) -> int:
        if self.class_thresholds is not None:
            return self.class_thresholds[index]
        return self.params.detection_threshold

    def process(self, scores: np.ndarray, time_ms: int) -> Decision:
        """Feed one inference result (the model's raw output row) taken at `time_ms`."""
        # A copy: the row is held for the window's running sum, and a caller may reuse its buffer
        # (an interpreter's output tensor) for the next result.
        scores_u8 = scores_to_uint8(np.array(scores).reshape(-1))
        if scores_u8.shape[0] != len(self.classes):
            raise ValueError(
                f"the model output has {scores_u8.shape[0]} scores but there are {len(self.classes)} classes"
            )
        time_ms = int(time_ms)
        if self._last_input_time_ms is not None and time_ms < self._last_input_time_ms:
            raise ValueError(
                f"results must come in time order: {time_ms} ms came after {self._last_input_time_ms} ms"
            )
        self._last_input_time_ms = time_ms

        params = self.params
        if params.minimum_count == 0:
            # Averaging disabled: the latest result alone decides.
            averages = scores_u8.astype(np.int64)
        else:
            if len(self._results) < MAX_RESULT_COUNT:
                self._results.append((time_ms, scores_u8))
                self._total += scores_u8
            oldest_kept = time_ms - params.average_window_duration_ms
            while self._results and self._results[0][0] < oldest_kept:
                self._total -= self._results.popleft()[1]
            if len(self._results) < params.minimum_count:
                return Decision(
                    time_ms, self._last_index, self.classes[self._last_index], 0, False, None, scores_u8
                )
            averages = self._total // len(self._results)

        top = int(np.argmax(averages))  # first index wins ties, as the firmware's strict '>' scan
        top_score = int(averages[top])
        label = self.classes[top]
        is_detection = (
            top_score > self._threshold(top)
            and not label.startswith("_")
            and (top != self._last_index or time_ms - self._last_time_ms > params.suppression_ms)
        )
        if is_detection:
            self._last_index = top
            self._last_time_ms = time_ms
        return Decision(time_ms, top, label, top_score, is_detection, averages, scores_u8)


class CompiledRecognizer:
    """`CommandRecognizer`'s rule compiled, over rows of a recorded (steps, classes) uint8 score
    array: `next_detection` runs it from one step to the next detection and can resume there,
    so a loop that changes the scores after each detection (the firmware's reset) runs it in
    pieces. Same decisions as `CommandRecognizer` (tests compare them)."""

    def __init__(
        self,
        classes: Sequence[str],
        params: DetectionParams,
        *,
        class_thresholds: Sequence[int] | None = None,
    ) -> None:
        self.classes = list(classes)
        self.params = params
        given = params.detection_threshold if class_thresholds is None else list(class_thresholds)
        self._thresholds = np.broadcast_to(np.asarray(given, dtype=np.int64), (len(self.classes),)).copy()
        self._keyword = np.array([not name.startswith("_") for name in self.classes])
        self._queue_times = np.zeros(MAX_RESULT_COUNT, np.int64)
        self._queue_scores = np.zeros((MAX_RESULT_COUNT, len(self.classes)), np.int64)
        self._total = np.zeros(len(self.classes), np.int64)
        # last detected class, its time, queue head, queue length, the last detection's score
        self._state = np.zeros(5, np.int64)

    def next_detection(
        self, scores_u8: np.ndarray, times_ms: np.ndarray, start: int, stop: int
    ) -> tuple[int, Detection] | None:
        """Feed rows start..stop-1 until one is detected: its row and detection (None: none was)."""
        params = self.params
        step = _recognize(
            scores_u8, times_ms, start, stop, self._thresholds, self._keyword,
            params.average_window_duration_ms, params.minimum_count, params.suppression_ms,
            self._queue_times, self._queue_scores, self._total, self._state,
        )  # fmt: skip
        if step < 0:
            return None
        index = int(self._state[0])
        return int(step), Detection(int(times_ms[step]), index, self.classes[index], int(self._state[4]))


@numba.njit(cache=True)
def _recognize(scores, times, start, stop, thresholds, keyword, window_ms, minimum_count, suppression_ms,
               queue_times, queue_scores, total, state):  # fmt: skip
    """CommandRecognizer.process over rows start..stop-1, the queue a ring buffer; the first
    detected row (-1: none). state: last class, last time, head, length, detected score."""
    n_classes = scores.shape[1]
    capacity = queue_times.shape[0]
    for step in range(start, stop):
        time_ms = times[step]
        if minimum_count == 0:
            top, best = 0, np.int64(scores[step, 0])
            for c in range(1, n_classes):
                if scores[step, c] > best:
                    top, best = c, np.int64(scores[step, c])
        else:
            head, count = state[2], state[3]
            if count < capacity:  # a full queue refuses the newest result
                slot = (head + count) % capacity
                queue_times[slot] = time_ms
                for c in range(n_classes):
                    queue_scores[slot, c] = scores[step, c]
                    total[c] += scores[step, c]
                count += 1
            oldest_kept = time_ms - window_ms
            while count > 0 and queue_times[head] < oldest_kept:
                for c in range(n_classes):
                    total[c] -= queue_scores[head, c]
                head = (head + 1) % capacity
                count -= 1
            state[2], state[3] = head, count
            if count < minimum_count:
                continue
            top, best = 0, total[0] // count
            for c in range(1, n_classes):
                if total[c] // count > best:
                    top, best = c, total[c] // count
        if (
            best > thresholds[top]
            and keyword[top]
            and (top != state[0] or time_ms - state[1] > suppression_ms)
        ):
            state[0], state[1], state[4] = top, time_ms, best
            return step
    return -1


@dataclass(frozen=True)
class SmoothedScores:
    """Per-step window averages of a score sequence for one (window, minimum_count) pair."""

    times_ms: np.ndarray  # (K,) int64
    top_index: np.ndarray  # (K,) int64
    top_score: np.ndarray  # (K,) int64
    ready: np.ndarray  # (K,) bool: at least minimum_count results were held


def _window_counts(times_ms: np.ndarray, average_window_duration_ms: int) -> np.ndarray:
    """How many results the window ending at each step holds (the firmware keeps t - window too)."""
    first = np.searchsorted(times_ms, times_ms - average_window_duration_ms, side="left")
    return np.arange(1, len(times_ms) + 1) - first


def window_averages(
    scores_u8: np.ndarray, times_ms: np.ndarray, average_window_duration_ms: int
) -> np.ndarray:
    """Every class's average over the window ending at each step, (K, classes) int64, floored as the
    firmware floors it; what the recognizer compares with its threshold while the queue is not full."""
    scores_u8 = np.asarray(scores_u8, dtype=np.uint8)
    times_ms = np.asarray(times_ms, dtype=np.int64)
    counts = _window_counts(times_ms, average_window_duration_ms)
    first = np.arange(1, len(times_ms) + 1) - counts
    cumulative = np.zeros((len(times_ms) + 1, scores_u8.shape[1]), np.int64)
    np.cumsum(scores_u8, axis=0, dtype=np.int64, out=cumulative[1:])
    return (cumulative[1:] - cumulative[first]) // counts[:, None]


def smooth_scores(
    scores_u8: np.ndarray, times_ms: np.ndarray, average_window_duration_ms: int, minimum_count: int
) -> SmoothedScores:
    """The recognizer's averages for every step at once (vectorized with cumulative sums).

    Exact as long as the window never holds MAX_RESULT_COUNT results; otherwise the
    firmware's refusal of new results makes the queue history-dependent, so that case
    runs the step-by-step queue.
    """
    scores_u8 = np.asarray(scores_u8, dtype=np.uint8)
    times_ms = np.asarray(times_ms, dtype=np.int64)
    if scores_u8.ndim != 2 or scores_u8.shape[0] != times_ms.shape[0]:
        raise ValueError("scores must be (steps, classes) with one time per step")
    if np.any(np.diff(times_ms) < 0):
        raise ValueError("result times must be non-decreasing")
    steps = times_ms.shape[0]
    if minimum_count == 0:
        averages = scores_u8.astype(np.int64)
        ready = np.ones(steps, dtype=bool)
    else:
        counts = _window_counts(times_ms, average_window_duration_ms)
        if steps and counts.max() >= MAX_RESULT_COUNT:
            return _smooth_with_queue(scores_u8, times_ms, average_window_duration_ms, minimum_count)
        averages = window_averages(scores_u8, times_ms, average_window_duration_ms)
        ready = counts >= minimum_count
    top_index = np.argmax(averages, axis=1) if steps else np.zeros(0, np.int64)
    top_score = averages[np.arange(steps), top_index] if steps else np.zeros(0, np.int64)
    return SmoothedScores(times_ms, top_index.astype(np.int64), top_score.astype(np.int64), ready)


def _smooth_with_queue(
    scores_u8: np.ndarray, times_ms: np.ndarray, average_window_duration_ms: int, minimum_count: int
) -> SmoothedScores:
    classes = [f"c{i}" for i in range(scores_u8.shape[1])]
    params = DetectionParams(
        average_window_duration_ms=average_window_duration_ms,
        minimum_count=minimum_count,
        detection_threshold=255,
    )
    recognizer = CommandRecognizer(classes, params)
    steps = times_ms.shape[0]
    top_index = np.zeros(steps, np.int64)
    top_score = np.zeros(steps, np.int64)
    ready = np.zeros(steps, bool)
    for step in range(steps):
        decision = recognizer.process(scores_u8[step], int(times_ms[step]))
        if decision.averages is not None:
            top_index[step] = decision.class_index
            top_score[step] = decision.score
            ready[step] = True
    return SmoothedScores(times_ms, top_index, top_score, ready)


@numba.njit(cache=True)
def _kept_after_suppression(
    steps: np.ndarray, top_index: np.ndarray, times_ms: np.ndarray, suppression_ms: int
) -> np.ndarray:
    """Which candidate steps survive suppression: another class than the last detection, or
    more than `suppression_ms` after it (the firmware starts as if class 0 fired at 0 ms)."""
    kept = np.zeros(steps.shape[0], np.bool_)
    last_index, last_time = 0, 0
    for i in range(steps.shape[0]):
        index = top_index[steps[i]]
        time_ms = times_ms[steps[i]]
        if index != last_index or time_ms - last_time > suppression_ms:
            last_index, last_time = index, time_ms
            kept[i] = True
    return kept


def detection_steps(
    smoothed: SmoothedScores,
    classes: Sequence[str],
    detection_threshold: int | Sequence[int],
    suppression_ms: int,
) -> np.ndarray:
    """The steps at which the recognizer detects (int64 indices into `smoothed`), without
    building `Detection`s: what threshold sweeps count."""
    thresholds = np.broadcast_to(np.asarray(detection_threshold, dtype=np.int64), (len(classes),))
    keyword = np.array([not name.startswith("_") for name in classes])
    candidate = smoothed.ready & (smoothed.top_score > thresholds[smoothed.top_index])
    candidate &= keyword[smoothed.top_index]
    steps = np.flatnonzero(candidate).astype(np.int64)
    return steps[_kept_after_suppression(steps, smoothed.top_index, smoothed.times_ms, int(suppression_ms))]


def detect(
    smoothed: SmoothedScores,
    classes: Sequence[str],
    detection_threshold: int | Sequence[int],
    suppression_ms: int,
) -> list[Detection]:
    """Apply threshold and suppression to precomputed averages (the recognizer's second half)."""
    return [
        Detection(
            int(smoothed.times_ms[step]),
            int(smoothed.top_index[step]),
            classes[int(smoothed.top_index[step])],
            int(smoothed.top_score[step]),
        )
        for step in detection_steps(smoothed, classes, detection_threshold, suppression_ms)
    ]


def replay(
    scores: np.ndarray,
    times_ms: np.ndarray,
    classes: Sequence[str],
    params: DetectionParams,
    *,
    class_thresholds: Sequence[int] | None = None,
) -> list[Detection]:
    """All detections `CommandRecognizer` makes on a recorded (steps, classes) score sequence."""
    scores_u8 = scores_to_uint8(np.asarray(scores).reshape(-1, len(classes)))
    smoothed = smooth_scores(scores_u8, times_ms, params.average_window_duration_ms, params.minimum_count)
    threshold = params.detection_threshold if class_thresholds is None else class_thresholds
    return detect(smoothed, classes, threshold, params.suppression_ms)
