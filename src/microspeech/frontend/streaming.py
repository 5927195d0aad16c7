"""StreamingFrontend: feed audio chunks of any size, get feature frames as they complete.

This is how firmware runs the frontend: the noise estimate (and DC-notch / activity state)
carries over from chunk to chunk and from frame to frame. It runs the same kernels as
compute_features, so a clip streamed in any chunking gives the same frames as the batch API.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from microspeech.audio import AudioError
from microspeech.checks import is_whole_number
from microspeech.frontend import kernels
from microspeech.frontend.batch import as_samples, check_rate, kernel_tables
from microspeech.frontend.settings import FrontendSettings
from microspeech.frontend.tables import build_tables


@dataclass(frozen=True)
class HopTrace:
    """What `StreamingFrontend.process_hops` computed: the frames and the state after every hop."""

    frames: np.ndarray  # (N, n_channels) uint16: every frame the hops completed
    frame_counts: np.ndarray  # (K,) int64: frames completed by the end of hop k (this call's)
    states: np.ndarray  # (K, S) int64: noise estimate, activity and DC-notch state, pending length
    pending: np.ndarray  # (K, window_size) int16: the samples waiting for the next frame, zero padded

    def same_state(self, hop: int, other: HopTrace, other_hop: int) -> bool:
        """Whether the frontend was in the same state after `hop` as `other` after `other_hop`
        (then every frame from there on is the same, as with equal `state_bytes`)."""
        return bool(
            np.array_equal(self.states[hop], other.states[other_hop])
            and np.array_equal(self.pending[hop], other.pending[other_hop])
        )

    def holds_window(self, windows: np.ndarray, first_hop: int) -> np.ndarray:
        """Whether each (n_frames, n_channels) buffer of `windows` equals the last n_frames frames
        after hop first_hop + i of this trace (zeros before the first frame), as booleans."""
        n_frames = windows.shape[1]
        ends = self.frame_counts[first_hop : first_hop + len(windows)]
        same = np.zeros(len(windows), dtype=bool)
        whole = np.flatnonzero(ends >= n_frames)  # a buffer that still holds start-up zeros is recomputed
        if whole.size:
            held = np.lib.stride_tricks.sliding_window_view(self.frames, windows.shape[1:])[:, 0]
            same[whole] = (windows[whole] == held[ends[whole] - n_frames]).all(axis=(1, 2))
        return same

    def state_bytes(self, hop: int) -> bytes:
        """The frontend's `state_bytes()` after `hop`."""
        n_channels = self.frames.shape[1]
        estimate = self.states[hop, :n_channels]
        activity = self.states[hop, n_channels : n_channels + kernels.AD_STATE_SIZE]
        dc_state = self.states[hop, n_channels + kernels.AD_STATE_SIZE : -1]
        pending = self.pending[hop, : self.states[hop, -1]]
        return b"".join(array.tobytes() for array in (estimate, activity, dc_state, pending))

    @staticmethod
    def concatenate(traces: list[HopTrace]) -> HopTrace:
        """One trace of consecutive calls (frame counts run on across them)."""
        offsets = np.cumsum([0] + [len(trace.frames) for trace in traces[:-1]])
        return HopTrace(
            np.concatenate([trace.frames for trace in traces]),
            np.concatenate(
                [trace.frame_counts + offset for trace, offset in zip(traces, offsets, strict=True)]
            ),
            np.concatenate([trace.states for trace in traces]),
            np.concatenate([trace.pending for trace in traces]),
        )


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
        """Continue from a state `save_state` returned (the state itself stays as it was).

        The state must come from a frontend of the same settings: the kernels index these arrays
        without bounds checks, so one of another size would crash the process."""
        try:
            pending, estimate, activity, dc_state, frames_emitted = state
        except (TypeError, ValueError):
            raise ValueError("state: expected the 5-tuple StreamingFrontend.save_state returns") from None
        expected = {
            "pending samples": (pending, np.int16, None),
            "noise estimate": (estimate, np.int64, self._estimate.shape),
            "activity state": (activity, np.int64, self._activity.shape),
            "DC notch state": (dc_state, np.int64, self._dc_state.shape),
        }
        for name, (array, dtype, shape) in expected.items():
            if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
                raise ValueError(f"state: its {name} is not a 1-D {np.dtype(dtype).name} array")
            if shape is not None and array.shape != shape:
                raise ValueError(
                    f"state: its {name} has shape {array.shape}, this frontend's {shape} "
                    "(a state from a frontend of other settings)"
                )
        if pending.shape[0] >= self.settings.window_size:
            raise ValueError(f"state: {pending.shape[0]} pending samples, fewer than a window expected")
        if not is_whole_number(frames_emitted) or frames_emitted < 0:
            raise ValueError(f"state: frames emitted {frames_emitted!r} is not a count")
        self._pending, self._estimate = pending.copy(), estimate.copy()
        self._activity, self._dc_state = activity.copy(), dc_state.copy()
        self.frames_emitted = int(frames_emitted)

    def activity_detected(self) -> bool:
        """True once activity tripped since the last call (MLTK's ActivityDetectionTripped); clears it."""
        tripped = bool(self._activity[3])
        self._activity[3] = 0
        return tripped

    def process_hops(self, audio: np.ndarray, hop_samples: int) -> HopTrace:
        """Process `audio` (int16, a whole number of hops) as consecutive chunks of `hop_samples`,
        recording the state after each: the same frames and states as `process` hop by hop, in
        one pass over the kernels."""
        settings = self.settings
        raw = np.asarray(audio)
        if not is_whole_number(hop_samples):
            raise ValueError(f"hop_samples={hop_samples!r}: expected a whole number of samples")
        # Converted as `process` converts (a float in [-1, 1] is scaled, not cast to 0).
        samples = np.ascontiguousarray(as_samples(raw, source="audio")) if raw.size else raw.astype(np.int16)
        if samples.ndim != 1 or hop_samples < 1 or samples.shape[0] % hop_samples or not samples.size:
            raise ValueError(
                f"expected 1-D int16 audio of whole {hop_samples}-sample hops, got {samples.shape}"
            )
        n_hops = samples.shape[0] // hop_samples
        dc_states = np.zeros((n_hops, 2), dtype=np.int64)
        if settings.dc_notch_filter_enable:
            filtered = np.empty_like(samples)
            coef = self._tables[-1][kernels.P_DC_COEF]
            for hop in range(n_hops):
                span = slice(hop * hop_samples, (hop + 1) * hop_samples)
                kernels.dc_notch(samples[span], filtered[span], self._dc_state, coef)
                dc_states[hop] = self._dc_state
        else:
            filtered = samples
        buffered = np.concatenate([self._pending, filtered]) if self._pending.size else filtered
        size, step = settings.window_size, settings.window_step
        hop_ends = self._pending.shape[0] + hop_samples * np.arange(1, n_hops + 1, dtype=np.int64)
        frame_counts = np.where(hop_ends >= size, (hop_ends - size) // step + 1, 0).astype(np.int64)
        n_frames = int(frame_counts[-1]) if n_hops else 0
        frames = np.empty((n_frames, settings.n_channels), dtype=np.uint16)
        estimates = np.empty((n_hops, settings.n_channels), dtype=np.int64)
        activities = np.empty((n_hops, kernels.AD_STATE_SIZE), dtype=np.int64)
        kernels.process_frames(
            buffered, n_frames, *self._tables, self._estimate, self._activity, frames,
            frame_counts, estimates, activities,
        )  # fmt: skip
        pending_lengths = hop_ends - frame_counts * step
        padded = np.concatenate([buffered, np.zeros(size, dtype=np.int16)])
        pending = np.lib.stride_tricks.sliding_window_view(padded, size)[frame_counts * step].copy()
        pending[np.arange(size) >= pending_lengths[:, None]] = 0
        self._pending = buffered[n_frames * step :].copy()
        self.frames_emitted += n_frames
        states = np.concatenate([estimates, activities, dc_states, pending_lengths[:, None]], axis=1)
        return HopTrace(frames, frame_counts, states, pending)

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
            kernels.process_frames(
                buffered, n_frames, *self._tables, self._estimate, self._activity, frames,
                *kernels.no_snapshots(settings.n_channels),
            )  # fmt: skip
        self._pending = buffered[n_frames * step :].copy()
        self.frames_emitted += n_frames
        return frames
