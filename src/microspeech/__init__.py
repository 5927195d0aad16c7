"""microspeech: train, quantize, evaluate, profile and run tiny keyword-spotting models.

The data flow follows the subpackages: audio -> frontend -> data -> models ->
training -> tflite -> evaluation / detection; which package may import which is checked by
tests/check_layers.py (`make lint`). The common entry points are importable from the top level:

    from microspeech import compute_features, load_dataset, train_model, evaluate_model
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from microspeech.version import __version__

# TensorFlow turns its oneDNN kernels on by default only for CPUs with AVX512-VNNI/BF16, AVX-VNNI
# or AMX; on others (AVX2-only AMD EPYC, older Xeons) its Eigen Conv2D with one input channel
# makes training about 3x slower (BENCHMARKS.md, "Training throughput"). TensorFlow reads this
# once, when it starts; a value the user set wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Resolved on first use, so `import microspeech` stays cheap (no TensorFlow, no numba compile).
_LAZY_EXPORTS = {
    "read_audio": "microspeech.audio",
    "FrontendSettings": "microspeech.frontend",
    "compute_features": "microspeech.frontend",
    "StreamingFrontend": "microspeech.frontend",
    "load_dataset": "microspeech.data",
    "get_model_spec": "microspeech.models",
    "train_model": "microspeech.training",
    "resolve_model": "microspeech.models",
    "ResolvedModel": "microspeech.models",
    "evaluate_model": "microspeech.evaluation",
    "read_parameters": "microspeech.tflite.metadata",
    "write_parameters": "microspeech.tflite.metadata",
    "TfliteRunner": "microspeech.tflite.runtime",
    "DetectionParams": "microspeech.detection.params",
}

__all__ = ["__version__", *_LAZY_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'microspeech' has no attribute {name!r}")
