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


def test_a_model_storing_no_volume_gain_is_not_scaled(tmp_path, mltk_model):
    # As MLTK's audio_classifier: its default gain is 1; microspeech's 2 wrapped such a model's
    # loud samples (a TF micro_speech .tflite stores no parameters of MLTK's at all).
    from microspeech.detection.classify import KeywordSpotter

    stored = {k: v for k, v in read_parameters(mltk_model.tflite_bytes).items() if k != "volume_gain"}
    path = tmp_path / "no_gain.tflite"
    path.write_bytes(write_parameters(mltk_model.tflite_bytes, stored))
    assert load_keyword_model(path).detection.volume_gain == 1.0
    assert KeywordSpotter(path).params.volume_gain == 1.0


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


@pytest.mark.parametrize(
    "stored", [["a", "b", "c", "d"], [180, 999, 255, 255], [180.0, 200.5, 255.0, 255.0], [1, 2]]
)
def test_a_stored_threshold_list_is_checked_where_the_model_loads(tmp_path, mltk_model, stored):
    # "invalid literal for int() with base 10: 'a'" without the file, or an error later from the
    # recognizer; and --threshold, which drops the list, still failed on it.
    path = tmp_path / "listed.tflite"
    params = {**read_parameters(mltk_model.tflite_bytes), "detection_threshold_list": stored}
    path.write_bytes(write_parameters(mltk_model.tflite_bytes, params))
    with pytest.raises(ModelLoadError, match=f"{path}: detection_threshold_list"):
        load_keyword_model(path)
    given = load_keyword_model(path, overrides={"detection_threshold": 200})
    assert given.class_thresholds is None and given.detection.detection_threshold == 200
    good = {**params, "detection_threshold_list": [180, 200, 255, 255]}
    path.write_bytes(write_parameters(mltk_model.tflite_bytes, good))
    assert load_keyword_model(path).class_thresholds == [180, 200, 255, 255]
