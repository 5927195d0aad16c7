"""Evaluation: metrics, plots, clip and streaming evaluation.

    from microspeech.evaluation import evaluate_model
    report = evaluate_model("tflite_micro_speech", dataset="speech_commands_test_set_v0.02")
    report.result("int8").metrics.overall_accuracy
"""

from __future__ import annotations

from typing import Any

_LAZY = {"evaluate_model": "evaluate", "EvaluationError": "evaluate", "compute_metrics": "metrics"}


def __getattr__(name: str) -> Any:
    # Lazy, so `microspeech.evaluation.streaming` users do not pay for Keras/plots imports.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
