"""StreamingFrontend: feed audio chunks of any size, get feature frames as they complete.

This is how firmware runs the frontend: the noise estimate (and DC-notch / activity state)
carries over from chunk to chunk and from frame to frame. It runs the same kernels as
compute_features, so a clip streamed in any chunking gives the same frames as the batch API.
"""

from __future__ import annotations

import numpy as np

from microspeech.audio import AudioError
from microspeech.frontend import kernels
from microspeech.frontend.batch import as_samples, check_rate, kernel_tables
from microspeech.frontend.settings import FrontendSettings
from microspeech.frontend.tables import build_tables


class StreamingFrontend:
    """Stateful frontend: `.process(chunk) -> (k, n_channels) uint16` for the k frames completed."""

    def __init__(self, settings: FrontendSettings | None = None) -> None:
        self.settings = settings or FrontendSettings()
        self._tables = kernel_tables(build_tables(self.settings))
        self.reset()

    def reset(self) -> None:
        """Forget all state, as firmware's FrontendReset does."""
        n_channels = self.settings.n_channels
        self._pending = np.zeros(0, dtype=np.int16)
        self._estimate = np.zeros(n_channels, dtype=np.int64)
        self._activity = np.zeros(kernels.AD_STATE_SIZE, dtype=np.int64)
        self._dc_state = np.zeros(2, dtype=np.int64)
        self.frames_emitted = 0

    @property
    def noise_estimate(self) -> np.ndarray:
        """The per-channel noise estimate (uint32 in C), a copy."""
        return self._estimate.astype(np.uint32)

    def state_bytes(self) -> bytes:
        """Everything the next frames depend on, as bytes: equal bytes, equal frames from here on."""
        return b"".join(
            array.tobytes() for array in (self._estimate, self._activity, self._dc_state, self._pending)
        )

    def save_state(self) -> tuple:
        """A copy of the state, for `load_state` (to resume a stream from here later)."""
        arrays = (self._pending, self._estimate, self._activity, self._dc_state)
        return (*(array.copy() for array in arrays), self.frames_emitted)

    def load_state(self, state: tuple) -> None:
        """Continue from a state `save_state` returned (the state itself stays as it was)."""
        pending, estimate, activity, dc_state, self.frames_emitted = state
        self._pending, self._estimate = pending.copy(), estimate.copy()
        self._activity, self._dc_state = activity.copy(), dc_state.copy()

    def activity_detected(self) -> bool:
        """True once activity tripped since the last call (MLTK's ActivityDetectionTripped); clears it."""
        tripped = bool(self._activity[3])
        self._activity[3] = 0
        return tripped

    def process(self, chunk: np.ndarray, *, sample_rate: int | None = None) -> np.ndarray:
        """Append `chunk` (1-D int16; int32/float converted) and return the frames it completed."""
        settings = self.settings
        check_rate(sample_rate, settings, "chunk")
        raw = np.asarray(chunk)
        if raw.ndim != 1:
            raise AudioError(f"chunk: expected 1-D mono samples, got shape {raw.shape}; downmix stereo first")
        if raw.size == 0:
            return np.zeros((0, settings.n_channels), dtype=np.uint16)
        samples = np.ascontiguousarray(as_samples(raw, source="chunk"))
        if settings.dc_notch_filter_enable:
            filtered = np.empty(samples.shape[0], dtype=np.int16)
            kernels.dc_notch(samples, filtered, self._dc_state, self._tables[-1][kernels.P_DC_COEF])
        else:
            filtered = samples
        buffered = np.concatenate([self._pending, filtered]) if self._pending.size else filtered
        size, step = settings.window_size, settings.window_step
        n_frames = (buffered.shape[0] - size) // step + 1 if buffered.shape[0] >= size else 0
        frames = np.empty((n_frames, settings.n_channels), dtype=np.uint16)
        if n_frames:
            kernels.process_frames(buffered, n_frames, *self._tables, self._estimate, self._activity, frames)
        self._pending = buffered[n_frames * step :].copy()
        self.frames_emitted += n_frames
        return frames
