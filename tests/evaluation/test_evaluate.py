"""Scoring float and int8 models, the written report, and evaluate_model end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from microspeech.evaluation.evaluate import score_keras, score_tflite
from microspeech.evaluation.metrics import compute_metrics
from microspeech.evaluation.plots import PLOTS, write_plots
from microspeech.evaluation.report import EvaluationReport, VariantResult, summary_text, write_results

CLASSES = ["yes", "no", "_unknown_", "_silence_"]


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    return np.random.default_rng(1).integers(-128, 128, size=(70, 49, 40)).astype(np.int8)


@pytest.mark.xdist_group("evaluation_tiny_model")
def test_float_and_int8_scores_agree(tiny_model_files, features: np.ndarray) -> None:
    keras_path, tflite_path = tiny_model_files
    float_scores = score_keras(keras_path, features, batch_size=32)  # 70 = 2 full batches + 6
    seen: list[int] = []
    litert_scores = score_tflite(tflite_path, features, on_progress=seen.append)
    assert float_scores.shape == litert_scores.shape == (70, 4)
    assert sum(seen) == 70
    np.testing.assert_allclose(float_scores.sum(axis=1), 1.0, atol=1e-5)
    # int8 scores are multiples of the output scale 1/256 in [0, 1).
    np.testing.assert_allclose(litert_scores * 256, np.round(litert_scores * 256), atol=1e-9)
    assert litert_scores.min() >= 0.0 and litert_scores.max() < 1.0
    assert np.abs(float_scores - litert_scores).max() < 0.05
    # TFLM (what firmware computes) gives the very same int8 outputs as LiteRT.
    tflm_scores = score_tflite(tflite_path, features[:20], backend="tflm")
    np.testing.assert_array_equal(tflm_scores, litert_scores[:20])


def _report(tmp_path, variants=("float", "int8")) -> EvaluationReport:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=50)
    results = []
    for variant in variants:
        scores = rng.dirichlet(np.ones(4), size=50)
        scores[np.arange(50), labels] += 0.5  # mostly right, not always
        scores /= scores.sum(axis=1, keepdims=True)
        metrics = compute_metrics(scores, labels, CLASSES)
        runtime = "keras" if variant == "float" else "litert"
        results.append(VariantResult(variant, runtime, tmp_path / f"m.{variant}", metrics, scores, 0.25))
    return _report_of(tmp_path, labels, results)


def _report_of(tmp_path, labels: np.ndarray, results: list[VariantResult]) -> EvaluationReport:
    return EvaluationReport(
        name="tiny",
        model_dir=tmp_path,
        dataset="hand-made",
        dataset_root=tmp_path,
        split="test",
        classes=CLASSES,
        labels=labels,
        clip_paths=[f"clip{i}.wav" for i in range(len(labels))],
        results=results,
        seed=7,
    )


def test_written_results_and_plots(tmp_path) -> None:
    report = _report(tmp_path)
    output = tmp_path / "eval"
    files = write_results(report, output)
    for result in report.results:
        files += write_plots(result.metrics, output, result.variant, f"tiny {result.variant}")
    assert sorted(p.name for p in output.iterdir()) == sorted(p.name for p in files)  # no temp files left
    assert len(files) == 2 + 2 * len(PLOTS)
    for png in files[2:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    saved = json.loads((output / "eval-results.json").read_text())
    assert saved["n_samples"] == 50 and len(saved["clips"]) == 50
    # The seed that drew generated _silence_ clips: results of two seeds differed with nothing to say so.
    assert saved["seed"] == 7 and ", seed 7" in (output / "summary.txt").read_text()
    for result in report.results:
        stored = saved["results"][result.variant]
        assert stored["overall_accuracy"] == result.metrics.overall_accuracy
        assert stored["confusion_matrix"] == result.metrics.confusion_matrix
        assert np.argmax(stored["scores"], axis=1).tolist() == np.argmax(result.scores, axis=1).tolist()
    summary = (output / "summary.txt").read_text()
    float_accuracy = f"{100 * report.result('float').metrics.overall_accuracy:.3f}%"
    int8_accuracy = f"{100 * report.result('int8').metrics.overall_accuracy:.3f}%"
    # Side by side on one line, then MLTK's per-variant block.
    assert any(float_accuracy in line and int8_accuracy in line for line in summary.splitlines())
    assert f"Overall accuracy: {float_accuracy}" in summary
    assert summary == summary_text(report)


def test_a_class_without_test_clips_is_not_scored_as_zero(tmp_path) -> None:
    """A test set without any "yes" printed "yes accuracy 0.000%" and averaged that class's
    undefined ROC AUC into the mean; MLTK's 0 stays in the JSON, the text says n/a."""
    rng = np.random.default_rng(3)
    labels = rng.integers(1, 4, size=40)  # no "yes"
    scores = rng.dirichlet(np.ones(4), size=40)
    metrics = compute_metrics(scores, labels, CLASSES)
    assert metrics.classes_without_samples == ["yes"]
    assert metrics.class_accuracies[0] == 0.0  # MLTK's definition, kept in the JSON
    assert metrics.roc_auc_avg_present == pytest.approx(np.mean(metrics.roc_auc[1:]))
    result = VariantResult("int8", "litert", tmp_path / "m.tflite", metrics, scores, 0.1)
    report = _report_of(tmp_path, labels, [result])
    summary = summary_text(report)
    assert "- yes = n/a (no clips)" in summary and "yes = 0.000%" not in summary
    present = f"{100 * metrics.roc_auc_avg_present:.3f}%"
    assert f"Average ROC AUC: {100 * metrics.roc_auc_avg:.3f}% ({present} without yes)" in summary
    lines = [" ".join(line.split()) for line in summary.splitlines()]
    assert "yes accuracy n/a (no clips)" in lines and "yes ROC AUC n/a (no clips)" in lines
