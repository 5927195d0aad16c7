"""Whole streams through the firmware loop: `run_stream` collects a `KeywordSpotter`'s scores and
detections over a recording, computing them in batches where the result is provably the plain
loop's (a run without resets a minute of hops at a time; a run with resets by following a recorded
run without them, recomputing only after each reset until the frontend's state meets it again).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from microspeech.audio import SAMPLE_RATE
from microspeech.detection.classify import KeywordSpotter, apply_volume_gain
from microspeech.detection.detector import Detection

if TYPE_CHECKING:
    from microspeech.frontend.streaming import HopTrace


@dataclass(frozen=True)
class StreamRun:
    """Everything one pass over a stream produced."""

    times_ms: np.ndarray  # (K,) inference times
    scores: np.ndarray  # (K, classes) uint8: the model outputs on the firmware's 0-255 scale
    detections: list[Detection]
    # With `run_stream(record=True)`: how it ran and the frontend's state after each inference,
    # so that runs with other thresholds can follow it (`run_stream(reference=...)`).
    frontend_trace: HopTrace | None = None
    hop_samples: int = 0
    volume_gain: float = 0.0
    resets: bool = True
    # On a recorded run: the outputs after a reset just before inference K, as far as runs
    # following it needed them. They depend on K alone, so runs with other thresholds share them.
    after_reset: dict[int, _ScoresAfterReset] = field(default_factory=dict, compare=False, repr=False)


# Hops per pass of a run without resets: a minute of audio at 100 ms, so memory stays small.
HOPS_PER_PASS = 600


def run_stream(
    spotter: KeywordSpotter,
    audio: np.ndarray,
    *,
    chunk_samples: int = SAMPLE_RATE,
    progress: Any = None,
    record: bool = False,
    reference: StreamRun | None = None,
) -> StreamRun:
    """Feed `audio` in chunks (as a microphone would) from a fresh start; collect scores and detections.

    `progress(samples_done)` is called after each chunk when given. `record` keeps the frontend's
    state after every inference in the result (runs without resets; a gated run keeps none).
    `reference`: a recorded run of the same audio, frontend, volume gain and latency without
    resets; the result is the one of the plain loop (see `_follow_reference`), computed only where
    it differs from the reference. A run without resets or gate is computed a minute of audio at
    a time (`_run_without_resets`): the same result, since the frontend's frames do not depend on
    how the audio is chunked.
    """
    if record and spotter.reset_after_detection:
        # Nothing would be recorded: a run with resets cannot be followed. (A gated run returns
        # its scores without a trace, which no later run follows either.)
        raise ValueError(
            "run_stream(record=True) records runs without resets only; make the spotter with "
            "reset_after_detection=False"
        )
    if reference is not None and _can_follow(spotter, audio, reference):
        return _follow_reference(spotter, audio, reference, progress)
    if not spotter.reset_after_detection and not spotter._gated:
        return _run_without_resets(spotter, audio, progress, record=record)
    spotter.reset()
    times: list[int] = []
    scores: list[np.ndarray] = []
    detections: list[Detection] = []
    for start in range(0, len(audio), chunk_samples):
        for decision in spotter.process(audio[start : start + chunk_samples]):
            times.append(decision.time_ms)
            scores.append(decision.scores_u8)
            if decision.is_detection:
                detections.append(
                    Detection(decision.time_ms, decision.class_index, decision.label, decision.score)
                )
        if progress is not None:
            progress(min(start + chunk_samples, len(audio)))
    width = len(spotter.classes)
    stacked = np.stack(scores) if scores else np.zeros((0, width), np.uint8)
    return StreamRun(
        np.asarray(times, dtype=np.int64),
        stacked,
        detections,
        hop_samples=spotter.hop_samples,
        volume_gain=spotter.params.volume_gain,
        resets=spotter.reset_after_detection,
    )


def _run_without_resets(
    spotter: KeywordSpotter, audio: np.ndarray, progress: Any, *, record: bool
) -> StreamRun:
    """The firmware loop without resets or gate over whole passes of hops: frontend in one kernel
    call, the inferences batched, the recognizer compiled."""
    from microspeech.frontend.streaming import HopTrace

    audio = np.asarray(audio)
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise ValueError(f"expected 1-D int16 audio at {SAMPLE_RATE} Hz, got {audio.dtype} {audio.shape}")
    spotter.reset()
    hop, gain = spotter.hop_samples, spotter.params.volume_gain
    n_hops = len(audio) // hop
    traces: list[HopTrace] = []
    scores: list[np.ndarray] = []

    def frontend_pass(first: int) -> tuple[HopTrace, np.ndarray]:
        last = min(n_hops, first + HOPS_PER_PASS)
        trace = spotter.frontend.process_hops(apply_volume_gain(audio[first * hop : last * hop], gain), hop)
        return trace, spotter.windows_after_hops(trace, last - first)

    # The frontend computes the next pass on a thread of its own while the model scores this
    # one (both release the GIL); the passes still run in order, so the result is the same.
    firsts = range(0, n_hops, HOPS_PER_PASS)
    with ThreadPoolExecutor(1, thread_name_prefix="frontend") as ahead:
        upcoming = ahead.submit(frontend_pass, firsts[0]) if firsts else None
        for index, first in enumerate(firsts):
            assert upcoming is not None
            trace, windows = upcoming.result()
            if index + 1 < len(firsts):
                upcoming = ahead.submit(frontend_pass, firsts[index + 1])
            scores.append(spotter.scores_of(windows))
            if record:
                traces.append(trace)
            if progress is not None:
                progress(min(n_hops, first + HOPS_PER_PASS) * hop)
    spotter._push_frames(spotter.frontend.process(apply_volume_gain(audio[n_hops * hop :], gain)))
    spotter.samples_seen, spotter._since_inference = len(audio), len(audio) - n_hops * hop
    if progress is not None:
        progress(len(audio))
    stacked = np.concatenate(scores) if scores else np.zeros((0, len(spotter.classes)), np.uint8)
    times = np.arange(1, n_hops + 1, dtype=np.int64) * hop * 1000 // SAMPLE_RATE
    recognizer = spotter.compiled_recognizer()
    detections: list[Detection] = []
    step = 0
    while (found := recognizer.next_detection(stacked, times, step, n_hops)) is not None:
        step = found[0] + 1
        detections.append(found[1])
    return StreamRun(
        times,
        stacked,
        detections,
        frontend_trace=HopTrace.concatenate(traces) if traces else None,
        hop_samples=hop,
        volume_gain=gain,
        resets=False,
    )


def _can_follow(spotter: KeywordSpotter, audio: np.ndarray, reference: StreamRun) -> bool:
    """Whether `reference` was recorded on what `spotter` would compute from `audio`: same hop,
    gain and inference count, no resets, and no activity gate (a gated frontend skips inferences)."""
    return (
        reference.frontend_trace is not None
        and not reference.resets
        and not spotter._gated
        and reference.hop_samples == spotter.hop_samples
        and reference.volume_gain == spotter.params.volume_gain
        and len(reference.times_ms) == len(audio) // spotter.hop_samples
        and len(reference.frontend_trace.states) == len(reference.times_ms)
    )


def _follow_reference(
    spotter: KeywordSpotter, audio: np.ndarray, reference: StreamRun, progress: Any = None
) -> StreamRun:
    """The firmware loop's result from a reference run without resets, computing only what differs.

    Until the first reset after a detection, every model output is the reference's; after one,
    they are `_ScoresAfterReset`'s until those are the reference's again or the next reset comes.
    So the result is exactly that of the plain loop, at a fraction of the inferences.
    """
    spotter.reset()
    times = reference.times_ms
    scores = reference.scores.copy()
    recognizer = spotter.compiled_recognizer()
    detections: list[Detection] = []
    since_reset: _ScoresAfterReset | None = None
    step = 0
    while step < len(times):
        stop = written_until = len(times)
        if since_reset is None:
            written_until = step  # scores[step:] are the reference's
        else:
            outputs = since_reset.outputs_from(step, spotter, audio, reference)
            if not len(outputs):
                since_reset = None  # the reference's from here to the next reset
                continue
            stop = step + len(outputs)
            scores[step:stop] = outputs
        found = recognizer.next_detection(scores, times, step, stop)
        if found is None:
            step = stop
        else:
            step = found[0] + 1
            detections.append(found[1])
            if spotter.reset_after_detection:
                # This reset's outputs replace the last one's from here on.
                scores[step:written_until] = reference.scores[step:written_until]
                since_reset = reference.after_reset.setdefault(step, _ScoresAfterReset(step))
        if progress is not None:
            progress(min(step * spotter.hop_samples, len(audio)))
    if progress is not None:
        progress(len(audio))
    return StreamRun(
        times, scores, detections, hop_samples=spotter.hop_samples, volume_gain=spotter.params.volume_gain
    )


# Hops computed at a time after a reset: 4, then twice as many each time up to 64. Convergence
# takes ~150 hops, yet a detection soon after the reset would waste most of a larger first batch.
FIRST_HOPS_AFTER_RESET, MOST_HOPS_AFTER_RESET = 4, 64


class _ScoresAfterReset:
    """The 0-255 outputs from inference `first_step` on after the frontend and features were
    reset just before it (and not again), computed as far as a run has needed them.

    The restarted frontend's state, compared with the reference's after every inference, meets
    it again (the noise estimate converges, here within ~15 s); once a whole input window of
    frames has been computed from equal states, the outputs are the reference's.
    """

    def __init__(self, first_step: int) -> None:
        self.first_step = first_step
        self.outputs: np.ndarray | None = None  # (computed, classes) uint8
        self.frontend_state: tuple | None = None  # after the last computed inference (None: reset)
        self.features: np.ndarray | None = None
        self.frames_after_match: int | None = None  # frames computed since the states were equal
        self.done = False  # the outputs are the reference's from here on

    def outputs_from(
        self, step: int, spotter: KeywordSpotter, audio: np.ndarray, reference: StreamRun
    ) -> np.ndarray:
        """The outputs from `step` on, as far as computed (computing more if none is); empty: the
        reference's from `step` on."""
        offset = step - self.first_step
        while (self.outputs is None or len(self.outputs) <= offset) and not self.done:
            self._compute_more(spotter, audio, reference)
        return self.outputs[offset:] if self.outputs is not None else np.zeros((0, 0), np.uint8)

    def _compute_more(self, spotter: KeywordSpotter, audio: np.ndarray, reference: StreamRun) -> None:
        computed = 0 if self.outputs is None else len(self.outputs)
        step = self.first_step + computed
        batch = min(MOST_HOPS_AFTER_RESET, max(FIRST_HOPS_AFTER_RESET, 2 * computed))
        hops = min(batch, len(reference.times_ms) - step)
        if hops <= 0:
            self.done = True
            return
        # The spotter's frontend and features are shared scratch: resume this run's state.
        if self.frontend_state is None:
            spotter._clear_features()
        else:
            spotter.frontend.load_state(self.frontend_state)
            spotter._features = self.features
        hop = spotter.hop_samples
        chunk = apply_volume_gain(audio[step * hop : (step + hops) * hop], spotter.params.volume_gain)
        trace = spotter.frontend.process_hops(chunk, hop)
        assert reference.frontend_trace is not None  # `_can_follow` checked it
        taken, frames_before = 0, 0
        for k in range(hops):
            if self.frames_after_match is not None and self.frames_after_match >= spotter.n_frames:
                self.done = True
                break
            if self.frames_after_match is not None:
                self.frames_after_match += int(trace.frame_counts[k]) - frames_before
            elif trace.same_state(k, reference.frontend_trace, step + k):
                self.frames_after_match = 0
            frames_before = int(trace.frame_counts[k])
            taken += 1
        # Where the buffer already holds the reference's frames, so does the output (most of
        # the second half before the states meet): only the other buffers go through the model.
        windows = spotter.windows_after_hops(trace, taken)
        outputs = reference.scores[step : step + taken].copy()
        differ = ~reference.frontend_trace.holds_window(windows, step)
        outputs[differ] = spotter.scores_of(windows[differ])
        self.outputs = outputs if self.outputs is None else np.concatenate([self.outputs, outputs])
        self.frontend_state, self.features = spotter.frontend.save_state(), spotter._features


def run_spotter(
    spotter: KeywordSpotter,
    stream: Any,
    description: str,
    show_progress: bool = True,
    *,
    record: bool = False,
    reference: StreamRun | None = None,
) -> Any:
    """The firmware loop over `stream.audio` once, with a progress bar; returns (StreamRun, seconds).

    `record` and `reference` as in `run_stream`."""
    import time

    from microspeech.progress import progress_bar

    with progress_bar(show_progress) as progress:
        task = progress.add_task(description, total=len(stream.audio))
        spotter.process(np.zeros(spotter.hop_samples, np.int16))  # compile and allocate before timing
        started = time.perf_counter()
        run = run_stream(
            spotter,
            stream.audio,
            progress=lambda done: progress.update(task, completed=done),
            record=record,
            reference=reference,
        )
        return run, time.perf_counter() - started


__all__ = ["StreamRun", "run_spotter", "run_stream"]
