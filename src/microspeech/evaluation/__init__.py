"""Evaluation: metrics, plots, clip and streaming evaluation, detection tuning, the model catalog.

    from microspeech.evaluation import evaluate_model, evaluate_streaming
    report = evaluate_model("tflite_micro_speech", dataset="speech_commands_test_set_v0.02")
    report.result("int8").metrics.overall_accuracy
    evaluate_streaming("tflite_micro_speech", dataset="...", snr_db=[20, 10]).miss_rate
"""

from __future__ import annotations

from microspeech.lazy import lazy_dir, lazy_exports

# name -> submodule; resolved on first use, so importing the package loads no runtime.
_LAZY = {
    "EvaluationError": "evaluate",
    "EvaluationReport": "report",
    "StreamingReport": "streaming",
    "TuningReport": "tuning",
    "compute_metrics": "metrics",
    "evaluate_model": "evaluate",
    "evaluate_streaming": "streaming",
    "fit_budget": "catalog",
    "parse_bytes": "catalog",
    "model_cards": "catalog",
    "resolve_keyword_model": "streaming",
    "tune_detection": "tuning",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)
