"""The written .tflite computes the same in LiteRT, tflite-micro and Silicon Labs' TFLM build.

Every registered model (its dry run, trained here on the real subset bundle) and MLTK's
shipped model, on real dev-bundle features. Silicon Labs' kernels round once where LiteRT's
round twice, so a mismatch may only be a one-step rounding tie; a model converted the old
way (per-channel FULLY_CONNECTED) must be caught.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microspeech.data import load_dataset
from microspeech.data.pipeline import make_eval_set
from microspeech.frontend import FrontendSettings
from microspeech.mltk_wheel import INSTALL_HINT
from microspeech.models import list_models
from microspeech.tflite.convert import convert_to_int8, operator_names
from microspeech.tflite.flatbuffer import unpack_model
from microspeech.tflite.graph import expose_layer_outputs
from microspeech.tflite.parity import check_parity
from microspeech.tflite.runtime import TfliteRunner, available_backends

pytestmark = pytest.mark.xdist_group("parity")
N_CLIPS = 400
CLASSES = ["yes", "no", "_unknown_", "_silence_"]


def _dev_features(test_set_dir: Path, frontend: FrontendSettings) -> np.ndarray:
    eval_set = make_eval_set(load_dataset(str(test_set_dir)), "test", CLASSES, frontend)
    picked = np.random.default_rng(0).permutation(len(eval_set.labels))[:N_CLIPS]
    return np.asarray(eval_set.features)[np.sort(picked)]


@pytest.fixture(scope="module")
def dev_features(test_set_dir: Path) -> np.ndarray:
    """Features of MLTK's frontend settings (49x40), what MLTK's model and the seed take."""
    return _dev_features(test_set_dir, FrontendSettings())


def _model_features(test_set_dir: Path, model_dir: Path) -> np.ndarray:
    """Features with the frontend settings embedded in the trained model's .tflite."""
    from microspeech.models import resolve_model

    return _dev_features(test_set_dir, resolve_model(model_dir).frontend)


@pytest.fixture(scope="module", params=list_models())
def dry_run_model(request: pytest.FixtureRequest, subset_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from microspeech.training import train_model

    output = tmp_path_factory.mktemp("parity") / f"{request.param}-test"
    train_model(f"{request.param}-test", dataset=str(subset_dir), output=output, progress=False)
    return output


def test_silicon_labs_tflm_is_installed():
    """The oracle is part of `make dev`; without it the checks below would compare only two runtimes."""
    assert "silabs-tflm" in available_backends()


def test_every_registered_model_computes_the_same_in_all_runtimes(dry_run_model: Path, test_set_dir: Path):
    tflite_bytes = next(dry_run_model.glob("*.tflite")).read_bytes()
    dev_features = _model_features(test_set_dir, dry_run_model)
    report = check_parity(tflite_bytes, dev_features)
    assert [r.backend for r in report.results] == ["tflm", "silabs-tflm"]
    for result in report.results:
        assert result.samples == len(dev_features)
        assert result.rounding_only, result.describe()
        # a one-step tie can flip an argmax only where two scores are (nearly) equal
        assert result.prediction_differs <= 0.01 * result.samples, result.describe()
        assert result.identical_samples >= 0.5 * result.samples, result.describe()


def test_train_records_the_parity_check(dry_run_model: Path):
    import json

    manifest = json.loads((dry_run_model / "manifest.json").read_text())
    parity = manifest["runtime_parity"]
    assert parity["reference"] == "litert" and parity["rounding_only"] is True
    assert {r["backend"] for r in parity["results"]} == {"tflm", "silabs-tflm"}
    assert "runtime parity" in (dry_run_model / "train.log").read_text()


def test_the_input_is_shaped_like_mltks_and_no_removable_reshape_remains(dry_run_model: Path):
    from microspeech.models import resolve_model

    tflite_bytes = next(dry_run_model.glob("*.tflite")).read_bytes()
    resolved = resolve_model(dry_run_model)
    frames, channels = resolved.frontend.spectrogram_shape
    assert TfliteRunner(tflite_bytes).input_details.shape == (1, frames, channels, 1)
    model = unpack_model(tflite_bytes)
    graph = model.subgraphs[0]
    ops = list(zip(operator_names(tflite_bytes), graph.operators, strict=True))
    fc_inputs = {int(op.inputs[0]) for name, op in ops if name == "FULLY_CONNECTED"}
    for name, op in ops:
        if name == "FULLY_CONNECTED":
            weights = graph.tensors[int(op.inputs[1])]
            assert len(weights.quantization.scale) == 1, "FULLY_CONNECTED weights must have one scale"
        if name == "RESHAPE":
            # The two that conversion removes; a reshape between layers (ds_cnn's 49x1x10 ->
            # 49x10x1) is part of the model.
            assert int(op.inputs[0]) not in np.asarray(graph.inputs).tolist(), "the input's RESHAPE remains"
            assert int(op.outputs[0]) not in fc_inputs, "a RESHAPE before FULLY_CONNECTED remains"
    if resolved.name.startswith("tflite_micro_speech"):
        assert "RESHAPE" not in [name for name, _ in ops]


def test_a_model_converted_the_old_way_is_caught(trained_model_dir: Path, dev_features):
    """Per-channel FULLY_CONNECTED (TensorFlow 2.21s default): Silicon Labs TFLM applies one scale."""
    import keras

    model = keras.saving.load_model(next(trained_model_dir.glob("*.keras")), compile=False)
    legacy = convert_to_int8(model, dev_features[:100], legacy=True)
    report = check_parity(legacy, dev_features)
    silabs = next(r for r in report.results if r.backend == "silabs-tflm")
    assert not silabs.rounding_only and not report.rounding_only
    assert any("FULLY_CONNECTED" in layer for layer in silabs.first_differing_layers), silabs.describe()
    assert silabs.max_first_layer_difference > 1


def test_mltks_shipped_model_differs_only_by_rounding_ties(mltk_tflite_bytes: bytes, dev_features):
    report = check_parity(mltk_tflite_bytes, dev_features)
    assert report.rounding_only, report.describe()
    assert all(r.prediction_differs == 0 for r in report.results), report.describe()


def test_exposed_layers_compute_what_the_graph_computes(mltk_tflite_bytes: bytes, dev_features):
    exposed, labels = expose_layer_outputs(mltk_tflite_bytes)
    assert [label.split(" ")[1] for label in labels] == operator_names(mltk_tflite_bytes)
    for backend in available_backends():
        layers = TfliteRunner(exposed, backend, single_output=False).predict_outputs(dev_features[0])  # type: ignore[arg-type]
        final = TfliteRunner(mltk_tflite_bytes, backend).predict_one(dev_features[0])  # type: ignore[arg-type]
        np.testing.assert_array_equal(layers[-1].reshape(final.shape), final)


def test_every_registered_model_exports_to_c_and_runs_in_tflm(
    dry_run_model: Path, test_set_dir: Path, tmp_path
):
    """Builtin ops only: the firmware's sources hold the very bytes, and TFLM runs them."""
    from microspeech.testing.readback import parse_c_array
    from microspeech.tflite.c_export import export_c

    tflite_path = next(dry_run_model.glob("*.tflite"))
    files = export_c(tflite_path, tmp_path / "c")
    assert parse_c_array(files.source.read_text()) == tflite_path.read_bytes()
    features = _model_features(test_set_dir, dry_run_model)[:8]
    assert TfliteRunner(tflite_path.read_bytes(), "tflm").predict(features).shape[0] == 8


def test_a_backend_this_machine_lacks_is_named_not_left_out(
    mltk_tflite_bytes: bytes, dev_features, monkeypatch
):
    # Without the MLTK wheel `train` printed only "tflm: N/N identical", as if Silicon Labs' TFLM
    # had been checked too.
    import microspeech.tflite.parity as parity

    monkeypatch.setattr(parity, "available_backends", lambda: ("litert", "tflm"))
    report = check_parity(mltk_tflite_bytes, dev_features[:4])
    assert [result.backend for result in report.results] == ["tflm"] and report.skipped == ["silabs-tflm"]
    expected = f"silabs-tflm: not installed ({INSTALL_HINT}), not checked"
    assert report.describe().endswith(expected)
    assert report.to_dict()["skipped"] == ["silabs-tflm"]
