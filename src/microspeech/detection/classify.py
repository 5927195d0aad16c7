"""Keyword spotting on a stream, the way MLTK's audio_classifier firmware does it.

Audio is scaled by `volume_gain` (saturating), fed to the streaming micro frontend whose
state persists across calls, and every `latency_ms` of audio the newest 49 frames (zeros
until that many exist) go through the int8 model (only when the frontend's activity
detector tripped, if the model enables it); `CommandRecognizer` turns the scores into
detections. As in the firmware, a detection resets the frontend and clears the feature
buffer (`reset_after_detection`), so one word cannot trigger twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from microspeech.audio import SAMPLE_RATE
from microspeech.detection.detector import (
    CommandRecognizer,
    CompiledRecognizer,
    Decision,
    Detection,
    scores_to_uint8,
)
from microspeech.detection.params import DetectionParams

if TYPE_CHECKING:
    from microspeech.frontend.streaming import HopTrace

# `KeywordSpotter.set_params(class_thresholds=...)`: keep the model's own per-class list.
MODEL_THRESHOLDS = "model"


class ModelLoadError(ValueError):
    """A model that cannot be found or used for streaming detection; the message names it."""


@dataclass(frozen=True)
class KeywordModel:
    """A .tflite with what streaming needs from its SL_PARAMSv1 parameters."""

    name: str
    source: str
    tflite_bytes: bytes
    parameters: dict[str, Any]
    classes: list[str]
    detection: DetectionParams
    class_thresholds: list[int] | None

    @property
    def frontend_settings(self) -> Any:
        from microspeech.frontend import FrontendSettings

        if any(key.startswith("fe.") for key in self.parameters):
            return FrontendSettings.from_dict(self.parameters)
        return FrontendSettings()


def load_keyword_model(
    model: bytes | str | Path,
    *,
    classes: list[str] | None = None,
    name: str | None = None,
    source: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> KeywordModel:
    """A keyword model from .tflite bytes or a file (.tflite, or an .mltk.zip holding one): its
    bytes, classes and embedded detection parameters. Model names and folders are resolved by
    `microspeech.models.resolve_model`, above this layer: pass its `.tflite` here.
    `overrides` replace embedded detection parameters before they are checked (None: keep)."""
    from microspeech.tflite.files import TfliteFileError, read_tflite_file
    from microspeech.tflite.metadata import classes_from_parameters, read_parameters

    if isinstance(model, bytes):
        source, data = source or name or "<.tflite bytes>", model
    else:
        try:
            tflite = read_tflite_file(model)
        except TfliteFileError as error:
            raise ModelLoadError(str(error)) from error
        source, data, name = str(tflite.path), tflite.tflite_bytes, name or tflite.name
    try:
        parameters = read_parameters(data)
    except ValueError as error:
        raise ModelLoadError(f"{source}: unreadable model parameters ({error})") from error
    classes = [str(c) for c in classes] if classes is not None else classes_from_parameters(parameters)
    if not classes:
        raise ModelLoadError(f"{source}: the model has no 'classes' parameter; give the class labels")
    rate = int(parameters.get("fe.sample_rate_hz", SAMPLE_RATE))
    if rate != SAMPLE_RATE:
        raise ModelLoadError(
            f"{source}: fe.sample_rate_hz={rate}; only {SAMPLE_RATE} Hz models are supported"
        )
    try:
        # Overrides apply before validation: a model storing an invalid value (MLTK's older
        # models store latency_ms=0) runs when the user gives a valid one.
        given = {key: value for key, value in (overrides or {}).items() if value is not None}
        unknown = sorted(set(given) - set(DetectionParams().to_dict()))
        if unknown:
            raise ValueError(f"unknown detection parameter(s) {', '.join(unknown)}")
        detection = DetectionParams.from_dict({**parameters, **given})
    except ValueError as error:
        raise ModelLoadError(f"{source}: {error}") from error
    thresholds = parameters.get("detection_threshold_list")
    if thresholds is not None and len(thresholds) != len(classes):
        raise ModelLoadError(
            f"{source}: detection_threshold_list has {len(thresholds)} entries for {len(classes)} classes"
        )
    return KeywordModel(
        name=str(parameters.get("name") or name or "model"),
        source=str(source),
        tflite_bytes=data,
        parameters=parameters,
        classes=classes,
        detection=detection,
        class_thresholds=None if thresholds is None else [int(t) for t in thresholds],
    )


def apply_volume_gain(audio: np.ndarray, gain: float) -> np.ndarray:
    """Scale int16 audio by `gain`, rounded to the nearest (ties to even) and saturating at the
    int16 range (0 or 1: unchanged, as in MLTK)."""
    if gain in (0, 1):
        return audio
    return _scaled_int16(np.ascontiguousarray(audio, dtype=np.int16), float(gain))


@numba.njit(cache=True)
def _scaled_int16(audio: np.ndarray, gain: float) -> np.ndarray:
    # One pass without temporaries: the firmware loop scales every 100 ms hop, and numpy's
    # clip costs tens of microseconds per call. int16 * gain is exact in float64 for integer gains.
    scaled = np.empty(audio.shape[0], np.int16)
    for i in range(audio.shape[0]):
        value = np.rint(audio[i] * gain)
        scaled[i] = min(max(value, -32768.0), 32767.0)
    return scaled


def detection_params_with(base: DetectionParams, overrides: dict[str, Any] | None) -> DetectionParams:
    """`base` with the given parameters replaced (None values are ignored); errors name the key."""
    if not overrides:
        return base
    known = set(base.to_dict())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"unknown detection parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    values = {key: value for key, value in overrides.items() if value is not None}
    return DetectionParams.from_dict({**base.to_dict(), **values})


class KeywordSpotter:
    """The firmware loop on a PC: feed audio with `process`, get one `Decision` per inference.

    Times are milliseconds of audio consumed since the start (or the last `reset`).
    """

    def __init__(
        self,
        model: KeywordModel | str | Path,
        params: DetectionParams | None = None,
        *,
        backend: str = "litert",
        reset_after_detection: bool = True,
    ) -> None:
        from microspeech.frontend import StreamingFrontend, uint16_to_int8
        from microspeech.tflite.runtime import TfliteRunner

        self.model = model if isinstance(model, KeywordModel) else load_keyword_model(model)
        self.params = params or self.model.detection
        self.reset_after_detection = reset_after_detection
        self.inferences = 0  # model runs so far (runs following a reference skip most)
        self.runner = TfliteRunner(self.model.tflite_bytes, backend=backend)  # type: ignore[arg-type]
        outputs = int(np.prod(self.runner.output_details.shape[1:]))
        if outputs != len(self.model.classes):
            raise ModelLoadError(
                f"{self.model.source}: the model has {outputs} outputs but {len(self.model.classes)} classes"
            )
        self._input = self.runner.input_details
        if self._input.dtype not in (np.int8, np.uint16, np.float32):
            raise ModelLoadError(
                f"{self.model.source}: input type {self._input.dtype} is not supported; "
                "expected int8, uint16 or float32"
            )
        self._to_int8 = uint16_to_int8
        settings = self._settings = self.model.frontend_settings
        self._gated = bool(settings.activity_detection_enable)
        self.frontend = StreamingFrontend(settings)
        self.n_frames = int(settings.n_frames)
        self.n_channels = int(settings.n_channels)
        if int(np.prod(self._input.shape)) != self.n_frames * self.n_channels:
            raise ModelLoadError(
                f"{self.model.source}: model input {self._input.shape} does not hold "
                f"{self.n_frames}x{self.n_channels} features"
            )
        self.set_params(self.params)

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def set_params(
        self, params: DetectionParams, *, class_thresholds: Sequence[int] | None | str = MODEL_THRESHOLDS
    ) -> None:
        """Use other detection parameters (same model and interpreter); starts over.

        `class_thresholds`: a per-class list (MLTK's detection_threshold_list, which the firmware
        uses instead of detection_threshold), None for the global threshold alone, or by default
        the model's own list (when it has one).
        """
        hop_samples = params.latency_ms * SAMPLE_RATE // 1000
        if hop_samples < 1:
            raise ValueError(f"latency_ms={params.latency_ms} is shorter than one sample")
        if isinstance(class_thresholds, str):
            class_thresholds = self.model.class_thresholds
        self.params = params
        self.hop_samples = hop_samples
        self.recognizer = CommandRecognizer(self.classes, params, class_thresholds=class_thresholds)
        self.reset()

    def compiled_recognizer(self) -> CompiledRecognizer:
        """A fresh `CompiledRecognizer` with this spotter's classes, parameters and thresholds."""
        return CompiledRecognizer(
            self.classes, self.params, class_thresholds=self.recognizer.class_thresholds
        )

    def reset(self) -> None:
        """Start over: clock, frontend state, feature buffer and recognizer."""
        self.samples_seen = 0
        self._since_inference = 0
        self.recognizer.reset()
        self._clear_features()

    def _clear_features(self) -> None:
        self.frontend.reset()
        self._features = np.zeros((self.n_frames, self.n_channels), dtype=np.uint16)

    def _model_input(self, features: np.ndarray | None = None) -> np.ndarray:
        """What the model gets for one (n_frames, n_channels) feature buffer (default: the current)."""
        features = self._features if features is None else features
        if self._input.dtype == np.int8:
            return self._to_int8(features, self._settings)
        if self._input.dtype == np.uint16:
            return features
        # Float models get what MLTK's feature generator gives them: scaled, standardized or raw.
        values = features.astype(np.float32)
        rescale = float(self.model.parameters.get("samplewise_norm.rescale") or 0.0)
        if rescale:
            return values * np.float32(rescale)
        if self.model.parameters.get("samplewise_norm.mean_and_std"):
            return (values - values.mean()) / np.float32(max(float(values.std()), 1e-12))
        return values

    def _push_frames(self, frames: np.ndarray) -> None:
        if len(frames) >= self.n_frames:
            self._features = np.ascontiguousarray(frames[-self.n_frames :], dtype=np.uint16)
        elif len(frames):
            self._features = np.concatenate([self._features[len(frames) :], frames]).astype(np.uint16)

    def infer(self) -> np.ndarray:
        """The model's raw output for the current feature buffer."""
        self.inferences += 1
        return self.runner.predict_ready(self._model_input()).reshape(-1)

    def windows_after_hops(self, trace: HopTrace, hops: int) -> np.ndarray:
        """The feature buffer after each of the first `hops` hops of `trace` (frames the frontend
        computed from the current buffer on), (hops, n_frames, n_channels) uint16; the buffer then
        holds the trace's last frames, as after feeding its audio to `process` without detections."""
        buffer = np.concatenate([self._features, trace.frames])
        windows = np.lib.stride_tricks.sliding_window_view(buffer, (self.n_frames, self.n_channels))[:, 0]
        self._features = np.ascontiguousarray(buffer[len(buffer) - self.n_frames :])
        return windows[trace.frame_counts[:hops]]

    def scores_of(self, windows: np.ndarray) -> np.ndarray:
        """The 0-255 scores of the model on each feature buffer of `windows`, batched."""
        if not len(windows):
            return np.zeros((0, len(self.classes)), np.uint8)
        if self._input.dtype in (np.int8, np.uint16):  # elementwise, or per window on its last two axes
            inputs = self._model_input(windows)
        else:
            inputs = np.stack([self._model_input(window) for window in windows])
        self.inferences += len(windows)
        return scores_to_uint8(self.runner.predict(inputs).reshape(len(windows), -1))

    def process(self, audio: np.ndarray) -> list[Decision]:
        """Consume int16 mono audio; returns the decision of every inference this audio completed."""
        audio = np.asarray(audio)
        if audio.dtype != np.int16 or audio.ndim != 1:
            raise ValueError(f"expected 1-D int16 audio at {SAMPLE_RATE} Hz, got {audio.dtype} {audio.shape}")
        audio = apply_volume_gain(audio, self.params.volume_gain)
        decisions: list[Decision] = []
        position = 0
        while position < len(audio):
            take = min(len(audio) - position, self.hop_samples - self._since_inference)
            self._push_frames(self.frontend.process(audio[position : position + take]))
            position += take
            self._since_inference += take
            self.samples_seen += take
            if self._since_inference == self.hop_samples:
                self._since_inference = 0
                if self._gated and not self.frontend.activity_detected():
                    continue  # firmware runs neither the model nor the recognizer without activity
                time_ms = self.samples_seen * 1000 // SAMPLE_RATE
                decision = self.recognizer.process(self.infer(), time_ms)
                decisions.append(decision)
                if decision.is_detection and self.reset_after_detection:
                    self._clear_features()
        return decisions


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
    state after every inference in the result (runs without resets or activity gate only).
    `reference`: a recorded run of the same audio, frontend, volume gain and latency without
    resets; the result is the one of the plain loop (see `_follow_reference`), computed only where
    it differs from the reference. A run without resets or gate is computed a minute of audio at
    a time (`_run_without_resets`): the same result, since the frontend's frames do not depend on
    how the audio is chunked.
    """
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


__all__ = [
    "KeywordModel",
    "KeywordSpotter",
    "ModelLoadError",
    "StreamRun",
    "apply_volume_gain",
    "detection_params_with",
    "load_keyword_model",
    "run_spotter",
    "run_stream",
]
