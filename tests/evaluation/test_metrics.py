"""MLTK-compatible metrics against values computed by hand, and against MLTK's shipped results."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from microspeech.evaluation import metrics
from microspeech.mltk_wheel import shipped_speech_model_zip

MLTK_ZIP = shipped_speech_model_zip()

# Two classes, four samples, no score on the 0.01 grid: predictions 0, 1, 0, 1.
SCORES = np.array([[0.95, 0.05], [0.45, 0.55], [0.75, 0.25], [0.25, 0.75]])
LABELS = np.array([0, 0, 1, 1])


def test_accuracies_and_confusion_matrix_by_hand() -> None:
    assert metrics.overall_accuracy(SCORES, LABELS) == 0.5
    assert metrics.class_accuracies(SCORES, LABELS) == [0.5, 0.5]
    assert metrics.confusion_matrix(SCORES, LABELS).tolist() == [[1, 1], [1, 1]]
    # Three classes, class 2 absent: its accuracy is 0 and balanced accuracy skips it.
    scores = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    labels = np.array([0, 0, 0, 1])
    assert metrics.class_accuracies(scores, labels) == [2 / 3, 1.0, 0.0]
    assert metrics.balanced_accuracy(scores, labels) == pytest.approx((2 / 3 + 1.0) / 2)
    assert metrics.overall_accuracy(scores, labels) == 0.75
    assert metrics.confusion_matrix(scores, labels).tolist() == [[2, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_roc_by_hand() -> None:
    fpr, tpr, thresholds = metrics.roc_curves(SCORES, LABELS)
    assert thresholds.size == 101 and thresholds[0] == 0.0 and thresholds[-1] == pytest.approx(1.0)
    k = np.arange(101)
    # Class 0: positives score 0.95 and 0.45, negatives 0.75 and 0.25.
    assert tpr[0].tolist() == np.select([k < 45, k < 95], [1.0, 0.5], 0.0).tolist()
    assert fpr[0].tolist() == np.select([k < 25, k < 75], [1.0, 0.5], 0.0).tolist()
    assert metrics.trapezoid_auc(fpr[0], tpr[0]) == pytest.approx(0.75)
    assert metrics.trapezoid_auc(fpr[1], tpr[1]) == pytest.approx(0.75)


def test_roc_is_on_mltks_grid_with_strict_threshold() -> None:
    # A positive and a negative inside the same 0.01 bin: the grid cannot separate them
    # (rank AUC would be 0, the trapezoid on MLTK's grid gives 0.5).
    scores = np.array([[0.547, 0.453], [0.543, 0.457]])
    fpr, tpr, _ = metrics.roc_curves(scores, np.array([1, 0]))
    assert metrics.trapezoid_auc(fpr[1], tpr[1]) == pytest.approx(0.5)
    # Positive means score > threshold: a score of exactly 0.50 is negative at 0.50.
    assert metrics.ROC_THRESHOLDS[50] == 0.5
    fpr, tpr, _ = metrics.roc_curves(np.array([[0.5, 0.5], [0.9, 0.1]]), np.array([0, 1]))
    assert tpr[0, 49] == 1.0 and tpr[0, 50] == 0.0
    # Threshold 0.00 is forced to (1, 1) even when nothing scores above it.
    fpr, tpr, _ = metrics.roc_curves(np.array([[0.0, 1.0], [0.0, 1.0]]), np.array([0, 1]))
    assert (fpr[0, 0], tpr[0, 0]) == (1.0, 1.0) and tpr[0, 1] == 0.0


def test_precision_recall_by_hand() -> None:
    precision, recall = metrics.precision_recall_curve(
        np.array([0.9, 0.8, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0, 1], dtype=bool)
    )
    np.testing.assert_allclose(precision, [3 / 5, 1 / 2, 2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 2 / 3, 2 / 3, 1 / 3, 0.0])
    # The curve stops at the highest threshold with full recall (0.7 here, not 0.2).
    precision, recall = metrics.precision_recall_curve(np.array([0.9, 0.7, 0.2]), np.array([1, 1, 0], bool))
    np.testing.assert_allclose(precision, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 0.5, 0.0])


def test_compute_metrics_dict_uses_mltk_keys() -> None:
    result = metrics.compute_metrics(SCORES, LABELS, ["a", "b"]).to_dict()
    mltk_keys = {"classes", "overall_accuracy", "class_accuracies", "fpr", "tpr", "roc_auc"}
    mltk_keys |= {"roc_thresholds", "roc_auc_avg", "precision", "recall", "confusion_matrix"}
    assert mltk_keys <= set(result)
    assert result["roc_auc_avg"] == pytest.approx(0.75)
    assert result["n_samples"] == 4 and result["class_counts"] == [2, 2]
    assert json.loads(json.dumps(result)) == result
    assert metrics.ClassifierMetrics.from_dict(result).to_dict() == result


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        metrics.compute_metrics(SCORES, np.array([0, 1, 2, 0]), ["a", "b"])
    with pytest.raises(ValueError, match="3 class names for 2 score columns"):
        metrics.compute_metrics(SCORES, LABELS, ["a", "b", "c"])
    with pytest.raises(ValueError, match="integer class indices"):
        metrics.overall_accuracy(SCORES, LABELS.astype(float))


@pytest.mark.skipif(MLTK_ZIP is None, reason="the MLTK oracle wheel is not installed")
@pytest.mark.parametrize("variant", ["h5", "tflite"])
def test_matches_mltk_shipped_results(variant: str) -> None:
    """MLTK's own eval-results.json: our AUC from its curves and our accuracies from its matrix."""
    with zipfile.ZipFile(MLTK_ZIP) as archive:
        shipped = json.loads(archive.read(f"eval/{variant}/eval-results.json"))
    assert shipped["roc_thresholds"] == metrics.ROC_THRESHOLDS.tolist()
    for fpr, tpr, auc in zip(shipped["fpr"], shipped["tpr"], shipped["roc_auc"], strict=True):
        assert metrics.trapezoid_auc(fpr, tpr) == pytest.approx(auc, abs=1e-12)
    # Rebuild labels/predictions from its confusion matrix: our accuracies must equal its.
    matrix = np.array(shipped["confusion_matrix"])
    actual, predicted = np.nonzero(matrix)
    labels = np.repeat(actual, matrix[actual, predicted])
    scores = np.eye(len(matrix))[np.repeat(predicted, matrix[actual, predicted])]
    assert metrics.overall_accuracy(scores, labels) == pytest.approx(shipped["overall_accuracy"], abs=1e-15)
    np.testing.assert_allclose(metrics.class_accuracies(scores, labels), shipped["class_accuracies"])


def test_errors_by_word_split_a_class_by_what_was_said() -> None:
    from microspeech.evaluation.metrics import errors_by_word

    classes = ["yes", "no", "_unknown_"]
    labels = np.array([0, 0, 1, 2, 2, 2, 2])
    predicted = np.array([0, 2, 1, 1, 1, 2, 0])
    scores = np.eye(3)[predicted] * 0.9 + 0.05
    words = ["yes", "yes", "no", "go", "go", "go", "left"]
    entries = errors_by_word(scores, labels, words, classes)
    assert [(e.word, e.clips, e.errors, e.predicted_as) for e in entries] == [
        ("go", 3, 2, {"no": 2}),
        ("left", 1, 1, {"yes": 1}),
        ("yes", 2, 1, {"_unknown_": 1}),
        ("no", 1, 0, {}),
    ]
    assert entries[0].error_rate == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="6 words for 7 samples"):
        errors_by_word(scores, labels, words[:6], classes)


def test_scores_on_another_scale_or_with_nan_are_refused():
    # A perfect classifier's uint8 scores (x255) gave ROC AUC 0; a NaN row counted as right.
    labels = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    compute_metrics = metrics.compute_metrics
    assert compute_metrics(probabilities, labels, ["a", "b"]).roc_auc_avg == 1.0
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\], got 25.5..229.5"):
        compute_metrics(probabilities * 255, labels, ["a", "b"])
    with_nan = probabilities.copy()
    with_nan[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"scores hold NaN \(sample 2\)"):
        compute_metrics(with_nan, labels, ["a", "b"])
