"""The firmware loop on a PC: `KeywordSpotter`, the way MLTK's audio_classifier firmware runs a model.

Audio is scaled by `volume_gain` (a whole factor, wrapping at the int16 limits as the part
does), fed to the streaming micro frontend whose state persists across calls, and every
`latency_ms` of audio the newest 49 frames (zeros until that many exist) go through the int8
model (only when the frontend's activity detector tripped, if the model enables it);
`CommandRecognizer` turns the scores into detections. As in the firmware, a detection resets
the frontend and clears the feature buffer (`reset_after_detection`), so one word cannot
trigger twice. Whole streams: `detection.stream_run`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from microspeech.audio import SAMPLE_RATE
from microspeech.detection.detector import CommandRecognizer, CompiledRecognizer, Decision, scores_to_uint8
from microspeech.detection.keyword_model import KeywordModel, ModelLoadError, load_keyword_model
from microspeech.detection.params import DetectionParams

if TYPE_CHECKING:
    from microspeech.frontend.streaming import HopTrace

# `KeywordSpotter.set_params(class_thresholds=...)`: keep the model's own per-class list.
MODEL_THRESHOLDS = "model"


def apply_volume_gain(audio: np.ndarray, gain: float) -> np.ndarray:
    """Scale int16 audio as MLTK's firmware does (its audio feature generator): by the gain's
    whole part (an int there), only when that is above 1, each product stored back into int16,
    so a sample beyond the int16 range wraps around (at a gain of 2, 20000 becomes -25536)."""
    factor = whole_volume_gain(gain)
    if factor == 1:
        return audio
    return _scaled_int16(np.ascontiguousarray(audio, dtype=np.int16), factor)


def whole_volume_gain(gain: float) -> int:
    """The factor the firmware applies for `volume_gain`: C's float-to-int conversion (1.9 -> 1),
    and 1 (no scaling) for what that makes 1 or less."""
    return max(1, int(gain))


def wrapped_samples(audio: np.ndarray, gain: float) -> int:
    """How many samples `apply_volume_gain` wraps around (0 where the gain applies none)."""
    factor = whole_volume_gain(gain)
    if factor == 1 or not len(audio):
        return 0
    limit = 32767 // factor  # |sample| * factor within int16: sample in [-(32768 // factor), limit]
    return int(np.count_nonzero((audio > limit) | (audio < -(32768 // factor))))


@numba.njit(cache=True)
def _scaled_int16(audio: np.ndarray, factor: int) -> np.ndarray:
    # One pass without temporaries: the firmware loop scales every 100 ms hop. The low 16 bits of
    # the product, as the firmware's int-to-int16_t store keeps them (GCC, two's complement).
    scaled = np.empty(audio.shape[0], np.int16)
    for i in range(audio.shape[0]):
        low = (np.int64(audio[i]) * factor) & 0xFFFF
        scaled[i] = low - 65536 if low >= 32768 else low
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


def _as_params(params: Any, base: DetectionParams) -> DetectionParams:
    """`params` as DetectionParams: a dict replaces those of `base` it names (unknown names refused)."""
    if isinstance(params, DetectionParams):
        return params
    if isinstance(params, Mapping):
        return detection_params_with(base, dict(params))
    raise TypeError(f"params={params!r}: expected DetectionParams or a dict of detection parameters")


class KeywordSpotter:
    """The firmware loop on a PC: feed audio with `process`, get one `Decision` per inference.

    Times are milliseconds of audio consumed since the start (or the last `reset`). `params`:
    the model's embedded parameters by default, DetectionParams, or a dict of those to change
    ({"detection_threshold": 200}). `class_thresholds` as in `set_params`: by default a model's
    detection_threshold_list stays in use (the firmware uses the list when present); None drops it.
    """

    def __init__(
        self,
        model: KeywordModel | str | Path,
        params: DetectionParams | Mapping[str, Any] | None = None,
        *,
        backend: str = "litert",
        reset_after_detection: bool = True,
        class_thresholds: Sequence[int] | None | str = MODEL_THRESHOLDS,
    ) -> None:
        from microspeech.frontend import StreamingFrontend, uint16_to_int8
        from microspeech.tflite.runtime import TfliteRunner

        self.model = model if isinstance(model, KeywordModel) else load_keyword_model(model)
        # A dict replaces the named parameters of the model's own.
        self.params = self.model.detection if params is None else _as_params(params, self.model.detection)
        self.reset_after_detection = reset_after_detection
        self.inferences = 0  # model runs so far (runs following a reference skip most)
        self.runner = TfliteRunner(
            self.model.tflite_bytes, backend=backend, source=self.model.source  # type: ignore[arg-type]
        )
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
        self.set_params(self.params if params is None else params, class_thresholds=class_thresholds)

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def set_params(
        self,
        params: DetectionParams | Mapping[str, Any],
        *,
        class_thresholds: Sequence[int] | None | str = MODEL_THRESHOLDS,
    ) -> None:
        """Use other detection parameters (same model and interpreter; a dict changes the ones it
        names); starts over.

        `class_thresholds`: a per-class list (MLTK's detection_threshold_list, which the firmware
        uses instead of detection_threshold), None for the global threshold alone, or by default
        the model's own list (when it has one), unless `params` names a detection_threshold (a
        dict naming one, or DetectionParams whose threshold is not the model's own): a threshold
        given replaces the list, as `classify_audio --threshold` does (the list went on deciding,
        and the threshold changed nothing).
        """
        if isinstance(class_thresholds, str) and class_thresholds != MODEL_THRESHOLDS:
            raise ValueError(
                f"class_thresholds={class_thresholds!r}: a list of thresholds, None, or {MODEL_THRESHOLDS!r}"
            )
        if isinstance(params, Mapping):
            threshold_given = params.get("detection_threshold") is not None
        else:  # a whole parameter set: its threshold was asked for where it is not the model's
            threshold_given = (
                isinstance(params, DetectionParams)
                and params.detection_threshold != self.model.detection.detection_threshold
            )
        params = _as_params(params, self.params)
        hop_samples = params.latency_ms * SAMPLE_RATE // 1000
        if hop_samples < 1:
            raise ValueError(f"latency_ms={params.latency_ms} is shorter than one sample")
        if isinstance(class_thresholds, str):  # MODEL_THRESHOLDS (any other string refused above)
            class_thresholds = None if threshold_given else self.model.class_thresholds
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
        # Float models with MLTK's sample-wise normalization get it on the raw spectrogram, as its
        # feature generator gives it; others the int8 features as floats, as evaluate scores them
        # (a float build of an int8-trained model: MLTK's .float32.tflite, a converted .keras).
        rescale = float(self.model.parameters.get("samplewise_norm.rescale") or 0.0)
        if rescale:
            return features.astype(np.float32) * np.float32(rescale)
        if self.model.parameters.get("samplewise_norm.mean_and_std"):
            values = features.astype(np.float32)
            return (values - values.mean()) / np.float32(max(float(values.std()), 1e-12))
        return self._to_int8(features, self._settings).astype(np.float32)

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
        """Consume mono audio at 16 kHz: int16, or int32 and float (full scale +-1.0) converted as
        StreamingFrontend.process converts them; returns the decision of every inference this
        audio completed."""
        from microspeech.frontend.batch import as_samples

        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ValueError(f"expected 1-D mono audio at {SAMPLE_RATE} Hz, got {audio.dtype} {audio.shape}")
        if not audio.size:
            return []
        audio = apply_volume_gain(as_samples(audio, source="audio"), self.params.volume_gain)
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


__all__ = [
    "KeywordSpotter",
    "apply_volume_gain",
    "detection_params_with",
    "whole_volume_gain",
    "wrapped_samples",
]
