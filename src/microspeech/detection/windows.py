"""The model inputs a device computes on a stream, all at once, without running a model.

`KeywordSpotter` feeds audio hop by hop: volume gain, the streaming frontend (warm, never
reset here), and every `latency_ms` the newest `n_frames` frames as int8. This computes the
same inputs for a whole recording in one frontend pass, so a float model (training's
checkpoint choice) or a batch of interpreters can score every inference of a stream. The
frontend's activity gate is not modelled: the settings must have it off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from microspeech.audio import SAMPLE_RATE
from microspeech.detection.params import DetectionParams
from microspeech.frontend import FrontendSettings, StreamingFrontend, uint16_to_int8

__all__ = ["StreamInputs", "stream_inputs"]


@dataclass(frozen=True)
class StreamInputs:
    """One model input per inference of the firmware loop, and the time it runs at."""

    features: np.ndarray  # (K, frames, channels) int8
    times_ms: np.ndarray  # (K,) int64, the firmware's clock (ms of audio consumed)
    # The frame sequence the inputs are cut from: features[k] == frames[starts[k] : starts[k] + frames]
    # (the spotter's zero frames first), for scorers that share work between overlapping inputs.
    # None when each input is quantized on its own (dynamic quantization): no shared frames then.
    frames: np.ndarray | None  # (F, channels) int8
    starts: np.ndarray  # (K,) int64


def stream_inputs(audio: np.ndarray, settings: FrontendSettings, params: DetectionParams) -> StreamInputs:
    """Model inputs at every `latency_ms` hop of int16 mono `audio`, exactly as `KeywordSpotter` builds them.

    No detection resets the frontend here (the scores then do not depend on a threshold).
    """
    from microspeech.detection.classify import apply_volume_gain

    if settings.activity_detection_enable:
        raise ValueError("stream_inputs does not model the frontend's activity gate; switch it off")
    audio = np.asarray(audio)
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise ValueError(f"expected 1-D int16 audio at {SAMPLE_RATE} Hz, got {audio.dtype} {audio.shape}")
    hop = params.latency_ms * SAMPLE_RATE // 1000
    if hop < 1:
        raise ValueError(f"latency_ms={params.latency_ms} is shorter than one sample")
    n_hops = len(audio) // hop
    trace = StreamingFrontend(settings).process_hops(
        apply_volume_gain(audio[: n_hops * hop], params.volume_gain), hop
    )
    n_frames, n_channels = settings.n_frames, settings.n_channels
    # The spotter's buffer starts as uint16 zeros; a hop's input ends with the frames done by then.
    padded = np.concatenate([np.zeros((n_frames, n_channels), np.uint16), trace.frames])
    starts = np.asarray(trace.frame_counts, dtype=np.int64)
    times_ms = np.arange(1, n_hops + 1, dtype=np.int64) * hop * 1000 // SAMPLE_RATE

    def inputs_of(frames: np.ndarray) -> np.ndarray:  # (K, n_frames, channels), one per hop
        windows = np.lib.stride_tricks.sliding_window_view(frames, n_frames, axis=0)
        return np.ascontiguousarray(windows[starts].transpose(0, 2, 1))

    if settings.quantize_dynamic_scale_enable:
        # Each input maps its own maximum to +127, so the int8 of a frame depends on the input.
        return StreamInputs(uint16_to_int8(inputs_of(padded), settings), times_ms, None, starts)
    padded = uint16_to_int8(padded, settings)  # frame by frame: each frame once, not per input
    return StreamInputs(inputs_of(padded), times_ms, padded, starts)
