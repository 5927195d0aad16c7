"""MLTK's compiled AudioFeatureGenerator, loaded by file path: the reference our frontend must match.

`pip install --no-deps silabs-mltk==0.20.0` puts the C++ wrapper on disk; importing the
`mltk` package itself would need TensorFlow 2.16, so we only locate the package directory
and load the one extension module (it needs nothing but numpy). Used by the parity tests
and benchmarks/frontend.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from microspeech.frontend.settings import FrontendSettings
from microspeech.mltk_wheel import INSTALL_HINT, find_mltk_file

WRAPPER_DIR = ("core", "preprocess", "audio", "audio_feature_generator")
WRAPPER_GLOB = "_audio_feature_generator_wrapper*.so"
__all__ = ["INSTALL_HINT", "MltkFrontend", "find_wrapper", "load_wrapper_module"]


def find_wrapper() -> Path | None:
    """Path of the installed `_audio_feature_generator_wrapper*.so`, or None."""
    return find_mltk_file(*WRAPPER_DIR, pattern=WRAPPER_GLOB)


def load_wrapper_module() -> ModuleType:
    path = find_wrapper()
    if path is None:
        raise ImportError(f"MLTK's compiled frontend is not installed ({INSTALL_HINT})")
    spec = importlib.util.spec_from_file_location("_audio_feature_generator_wrapper", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MltkFrontend:
    """One MLTK AudioFeatureGenerator; each `process_sample` call resets its state, as in MLTK."""

    def __init__(self, settings: FrontendSettings | None = None) -> None:
        self.settings = settings or FrontendSettings()
        self._wrapper = load_wrapper_module().AudioFeatureGeneratorWrapper(self.settings.to_dict())

    def process_sample(self, clip: np.ndarray, dtype: str = "uint16") -> np.ndarray:
        output = np.zeros(self.settings.spectrogram_shape, dtype=dtype)
        self._wrapper.process_sample(np.ascontiguousarray(clip, dtype=np.int16), output)
        return output

    def compute(self, clips: np.ndarray, dtype: str = "uint16") -> np.ndarray:
        """(N, n_samples) int16 -> (N, n_frames, n_channels), one clip at a time."""
        return np.stack([self.process_sample(clip, dtype) for clip in np.atleast_2d(clips)])

    def activity_was_detected(self) -> bool:
        return bool(self._wrapper.activity_was_detected())
