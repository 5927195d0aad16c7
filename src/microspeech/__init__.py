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

from microspeech.lazy import lazy_dir
from microspeech.version import __version__

# TensorFlow turns its oneDNN kernels on by default only for CPUs with AVX512-VNNI/BF16, AVX-VNNI
# or AMX; on others (AVX2-only AMD EPYC, older Xeons) its Eigen Conv2D with one input channel
# makes training about 3x slower (BENCHMARKS.md, "Training throughput"). TensorFlow reads this
# once, when it starts; a value the user set wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")



def numba_cache_fallback(package: str, user_cache: str) -> str | None:
    """A cache folder for numba's compiled kernels when neither of its own places is writable,
    else None. numba caches beside the source (`package`'s __pycache__) or in the user's cache
    (`user_cache`); with neither (a read-only install and no writable home: a service user) every
    `cache=True` kernel raised "no locator available" on import, so every command failed."""
    for folder in (os.path.join(package, "frontend", "__pycache__"), os.path.join(user_cache, "numba")):
        existing = folder
        while not os.path.exists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)  # the nearest folder that exists, where it would be made
        if os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK):
            return None
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"microspeech-numba-{os.getuid()}")


if "NUMBA_CACHE_DIR" not in os.environ:
    _fallback = numba_cache_fallback(
        os.path.dirname(os.path.abspath(__file__)),
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
    )
    if _fallback is not None:
        os.environ["NUMBA_CACHE_DIR"] = _fallback

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


__dir__ = lazy_dir(globals(), _LAZY_EXPORTS)
