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
    frames = StreamingFrontend(settings).process(apply_volume_gain(audio, params.volume_gain))
    n_frames, n_channels = settings.n_frames, settings.n_channels
    # The spotter's buffer starts as uint16 zeros; a frame is out once its whole window has arrived.
    padded = np.concatenate([np.zeros((n_frames, n_channels), np.uint16), np.asarray(frames, np.uint16)])
    as_int8 = uint16_to_int8(padded, settings)
    ends = np.arange(hop, len(audio) + 1, hop, dtype=np.int64)
    available = np.where(
        ends >= settings.window_size, (ends - settings.window_size) // settings.window_step + 1, 0
    )
    windows = np.lib.stride_tricks.sliding_window_view(as_int8, n_frames, axis=0)  # (F+1, channels, n_frames)
    features = np.ascontiguousarray(windows[available].transpose(0, 2, 1))
    return StreamInputs(features, ends * 1000 // SAMPLE_RATE)
