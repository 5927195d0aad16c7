"""DetectionParams: values convert only without loss; others are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from microspeech.detection.params import DetectionParams


def test_values_convert_without_loss_as_metadata_stores_them():
    params = DetectionParams.from_dict(
        {"detection_threshold": 185.0, "minimum_count": np.int32(2), "verbose_model_output_logs": "False"}
    )
    assert params.detection_threshold == 185 and isinstance(params.detection_threshold, int)
    assert params.minimum_count == 2 and params.verbose_model_output_logs is False  # "False" was truthy


@pytest.mark.parametrize(
    "changes",
    [
        {"detection_threshold": 185.9},  # was truncated to 185
        {"latency_ms": 1.5},
        {"verbose_model_output_logs": "no"},
        {"average_window_duration_ms": True},
        {"detection_threshold": "100"},  # was a TypeError: '<=' not supported
    ],
)
def test_a_lossy_or_odd_value_is_refused_by_name(changes):
    (name, value), = changes.items()
    with pytest.raises(ValueError, match=f"detection parameter {name}={value!r}: expected"):
        DetectionParams(**changes)
    with pytest.raises(ValueError, match=name):
        DetectionParams.from_dict(changes)
