"""Loading a keyword model: classes and embedded detection parameters, and models that cannot be used."""

import zipfile

import pytest

from microspeech.detection.keyword_model import ModelLoadError, load_keyword_model
from microspeech.detection.params import DetectionParams
from microspeech.tflite.metadata import read_parameters, write_parameters

pytestmark = pytest.mark.xdist_group("mltk_model")


def test_mltk_archive_parameters_are_read_like_firmware(mltk_model):
    assert mltk_model.classes == ["yes", "no", "_unknown_", "_silence_"]
    assert mltk_model.detection == DetectionParams(
        average_window_duration_ms=1000,
        detection_threshold=185,
        suppression_ms=750,
        minimum_count=3,
        volume_gain=2,
        latency_ms=100,
    )
    assert mltk_model.class_thresholds is None


def test_models_that_cannot_be_used_are_named(tmp_path, mltk_model):
    with pytest.raises(ModelLoadError, match="missing.tflite: no such .tflite file"):
        load_keyword_model(tmp_path / "missing.tflite")
    empty_zip = tmp_path / "empty.mltk.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "no model")
    with pytest.raises(ModelLoadError, match="holds no .tflite"):
        load_keyword_model(empty_zip)
    params = read_parameters(mltk_model.tflite_bytes)
    del params["classes"]
    no_classes = tmp_path / "no_classes.tflite"
    no_classes.write_bytes(write_parameters(mltk_model.tflite_bytes, params))
    with pytest.raises(ModelLoadError, match="no 'classes' parameter"):
        load_keyword_model(no_classes)
    assert load_keyword_model(no_classes, classes=["a", "b", "_c", "_d"]).classes == ["a", "b", "_c", "_d"]
