"""DetectionParams: values convert only without loss; others are refused by name."""

from __future__ import annotations

import re

import numpy as np
import pytest

from microspeech.detection.params import DetectionParams


def test_values_convert_without_loss_as_metadata_stores_them():
    params = DetectionParams.from_dict(
        {"detection_threshold": 185.0, "minimum_count": np.int32(2), "verbose_model_output_logs": "False"}
    )
    assert params.detection_threshold == 185 and isinstance(params.detection_threshold, int)
    assert params.minimum_count == 2 and params.verbose_model_output_logs is False  # "False" was truthy
    # The frontend settings' policy, the same function: numbers and flags written as words.
    worded = DetectionParams(detection_threshold="100", verbose_model_output_logs="no", volume_gain="1.5")
    assert worded.detection_threshold == 100 and worded.volume_gain == 1.5
    assert worded.verbose_model_output_logs is False


@pytest.mark.parametrize(
    "changes",
    [
        {"detection_threshold": 185.9},  # was truncated to 185
        {"latency_ms": 1.5},
        {"verbose_model_output_logs": "maybe"},
        {"average_window_duration_ms": True},
        {"detection_threshold": "100.5"},
        {"volume_gain": float("nan")},
        {"suppression_ms": [750]},
    ],
)
def test_a_lossy_or_odd_value_is_refused_by_name(changes):
    (name, value), = changes.items()
    with pytest.raises(ValueError, match=re.escape(f"detection parameter {name}={value!r}: expected")):
        DetectionParams(**changes)
    with pytest.raises(ValueError, match=name):
        DetectionParams.from_dict(changes)
