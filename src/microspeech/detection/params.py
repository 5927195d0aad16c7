"""Streaming detection parameters, stored in the .tflite under MLTK's key names."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from microspeech.checks import exact_value

# What the command line accepts for each parameter (low, high). The detector holds at most 50
# results, so a larger minimum_count never detects; windows and latencies beyond 10 s leave
# nothing to average. The dataclass itself only refuses what cannot run (firmware behaviour
# at the edges stays testable).
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "average_window_duration_ms": (1, 10_000),
    "detection_threshold": (0, 255),
    "suppression_ms": (0, 3_600_000),
    "minimum_count": (0, 50),
    "volume_gain": (0.0, 1000.0),
    "latency_ms": (1, 10_000),
}


# MLTK's key of a per-class threshold list, which the firmware reads instead of the threshold.
THRESHOLD_LIST = "detection_threshold_list"

# The firmware's fixed-size result queue; a full queue refuses the newest result.
MAX_RESULT_COUNT = 50


def results_in_window(window_ms: int, latency_ms: int) -> int:
    """Inference results a window of `window_ms` holds at one every `latency_ms`: its ends
    included, at most the firmware queue's MAX_RESULT_COUNT."""
    return min(window_ms // latency_ms + 1, MAX_RESULT_COUNT)


@dataclass(frozen=True)
class DetectionParams:
    """How firmware turns per-inference scores into keyword detections (MLTK semantics).

    Frozen: a model and its spotters share one, and a value edited in place skipped the range
    checks (and a new latency_ms the spotter's hop); `dataclasses.replace` makes a changed copy."""

    average_window_duration_ms: int = 1000
    detection_threshold: int = 185  # on the 0-255 score scale
    suppression_ms: int = 750
    minimum_count: int = 3
    # MLTK's audio_classifier applies 1 (no scaling) when a model stores no volume_gain; its
    # tflite_micro_speech stores 2, which wraps loud samples on the part.
    volume_gain: float = 1.0
    latency_ms: int = 100
    verbose_model_output_logs: bool = False

    def __post_init__(self) -> None:
        for field in fields(self):  # 185.9 as a threshold, "no" as a flag: refused, not truncated or truthy
            object.__setattr__(
                self,
                field.name,
                _coerce(field.name, getattr(self, field.name), type(getattr(DetectionParams, field.name))),
            )
        # The CLI's ranges (a minimum count of 0: no averaging, as MLTK), so the Python API, a
        # parameter block and the options accept the same values.
        for name, (low, high) in PARAM_RANGES.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(
                    f"detection parameter {name}={value!r} is out of range (expected {low:g} to {high:g})"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def results_in_window(self) -> int:
        """How many inference results the averaging window can hold (`results_in_window`); a
        minimum_count above it never detects anything."""
        return results_in_window(self.average_window_duration_ms, self.latency_ms)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DetectionParams:
        """Pick the known keys from a parameter dict (e.g. read from a .tflite); others are ignored."""
        known = {f.name: f.type for f in fields(cls)}
        picked: dict[str, Any] = {}
        for name in known:
            if name in values:
                picked[name] = values[name]  # __post_init__ converts what converts without loss
        return cls(**picked)


def checked_threshold_list(thresholds: Any, class_count: int) -> list[int]:
    """A stored detection_threshold_list as ints: one whole 0-255 entry per class, else ValueError."""
    entries = list(thresholds) if isinstance(thresholds, list | tuple) else [thresholds]
    if len(entries) != class_count:
        raise ValueError(f"detection_threshold_list has {len(entries)} entries for {class_count} classes")
    try:
        values = [exact_value(entry, int) for entry in entries]
    except (TypeError, ValueError, OverflowError):
        values = []
    if len(values) != len(entries) or not all(0 <= value <= 255 for value in values):
        raise ValueError(
            f"detection_threshold_list {entries!r}: needs one whole 0-255 threshold per class "
            f"({class_count} classes)"
        )
    return [int(value) for value in values]


def _coerce(name: str, value: Any, kind: type) -> Any:
    """`value` as `kind` when that loses nothing (checks.exact_value), else an error naming `name`."""
    try:
        return exact_value(value, kind)
    except (TypeError, ValueError, OverflowError):
        expected = "an int" if kind is int else f"a {kind.__name__}"
        raise ValueError(f"detection parameter {name}={value!r}: expected {expected}") from None
