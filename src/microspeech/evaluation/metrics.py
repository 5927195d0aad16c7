"""Classifier metrics with MLTK's definitions, so our numbers compare with its `mltk evaluate`.

Pure numpy. `scores` is (n_samples, n_classes) in [0, 1] (softmax output, int8 outputs
dequantized first), `labels` is (n_samples,) integer class indices.

Definitions followed (MLTK 0.20 `mltk/core/evaluate_classifier.py`):
- overall accuracy: argmax(scores) == label, over all samples;
- class accuracy: the recall of each class (0 for a class without samples);
- ROC: one-vs-rest per class at thresholds `np.arange(0.0, 1.01, 0.01)`; a sample is
  positive when its score is strictly greater than the threshold; the point at
  threshold 0.00 is forced to (FPR 1, TPR 1); AUC is trapezoid integration over these
  101 points; `roc_auc_avg` is the unweighted mean of the class AUCs;
- precision-recall: scikit-learn's `precision_recall_curve` as MLTK's shipped results
  were computed (scikit-learn < 1.1): distinct scores as thresholds (score >= threshold),
  the curve stops at the highest threshold that reaches full recall, and ends with the
  point precision 1, recall 0;
- confusion matrix: rows are the actual class, columns the predicted (argmax) class.
Added here: balanced accuracy, the mean recall over the classes that have samples.

Unlike MLTK, nothing is padded: MLTK feeds the last, partial batch padded to the batch
size and scores some clips twice; here every sample is scored exactly once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Exactly MLTK's expression, so the stored thresholds are bit-identical floats.
ROC_THRESHOLDS: np.ndarray = np.arange(0.0, 1.01, 0.01)


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (n_samples, n_classes), got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels must be ({scores.shape[0]},) to match scores, got shape {labels.shape}")
    if scores.shape[0] == 0:
        raise ValueError("no samples to evaluate")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in 0..{scores.shape[1] - 1}, got {labels.min()}..{labels.max()}")
    if np.isnan(scores).any():  # argmax takes NaN as the top score: counted as right or wrong at random
        raise ValueError(f"scores hold NaN (sample {int(np.argwhere(np.isnan(scores))[0, 0])})")
    return scores, labels.astype(np.int64)


def _check_probabilities(scores: np.ndarray) -> None:
    """The curves threshold scores at MLTK's 0.00-1.00: other scales give silently wrong areas."""
    low, high = float(scores.min()), float(scores.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"scores must be probabilities in [0, 1], got {low:g}..{high:g} "
            "(int8 or 0-255 outputs: dequantize them first, e.g. runner.output_details.dequantize)"
        )


def predicted_classes(scores: np.ndarray) -> np.ndarray:
    """The argmax class of each sample (ties go to the lowest index, as numpy's argmax)."""
    return np.argmax(np.asarray(scores), axis=1)


def overall_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose argmax score is their label."""
    scores, labels = _check(scores, labels)
    return float(np.mean(predicted_classes(scores) == labels))


def class_accuracies(scores: np.ndarray, labels: np.ndarray) -> list[float]:
    """Per-class accuracy (= recall): correct / samples of that class; 0.0 for a class without samples."""
    matrix = confusion_matrix(scores, labels)
    counts = matrix.sum(axis=1)
    correct = np.diag(matrix)
    return [float(c / n) if n else 0.0 for c, n in zip(correct, counts, strict=True)]


def balanced_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean recall over the classes that have at least one sample."""
    matrix = confusion_matrix(scores, labels)
    counts = matrix.sum(axis=1)
    present = counts > 0
    return float(np.mean(np.diag(matrix)[present] / counts[present]))


def confusion_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n_classes, n_classes) counts: row = actual class, column = predicted class.

    Always n_classes square (MLTK/scikit-learn shrink it when the highest classes are absent).
    """
    scores, labels = _check(scores, labels)
    n_classes = scores.shape[1]
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted_classes(scores)), 1)
    return matrix


def roc_curves(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-vs-rest ROC per class at MLTK's 101 thresholds.

    Returns (fpr, tpr, thresholds): fpr and tpr are (n_classes, 101). Positive means
    score > threshold; the first point (threshold 0.00) is forced to FPR = TPR = 1 as MLTK
    does; a rate with an empty denominator is 0.
    """
    scores, labels = _check(scores, labels)
    _check_probabilities(scores)
    n_classes = scores.shape[1]
    fpr = np.ones((n_classes, ROC_THRESHOLDS.size))
    tpr = np.ones((n_classes, ROC_THRESHOLDS.size))
    for class_index in range(n_classes):
        is_class = labels == class_index
        n_positive = int(is_class.sum())
        n_negative = labels.size - n_positive
        above = scores[:, class_index, None] > ROC_THRESHOLDS[None, 1:]
        true_positives = (above & is_class[:, None]).sum(axis=0)
        false_positives = (above & ~is_class[:, None]).sum(axis=0)
        tpr[class_index, 1:] = true_positives / n_positive if n_positive else 0.0
        fpr[class_index, 1:] = false_positives / n_negative if n_negative else 0.0
    return fpr, tpr, ROC_THRESHOLDS.copy()


def trapezoid_auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under one ROC curve whose points run from high FPR to low FPR (MLTK's order)."""
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    return float(np.sum(0.5 * (tpr[:-1] + tpr[1:]) * (fpr[:-1] - fpr[1:])))


def precision_recall_curve(
    class_scores: np.ndarray, is_positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of one class, as scikit-learn < 1.1 computed them for MLTK.

    Thresholds are the distinct scores (positive when score >= threshold). Points run from
    the highest threshold that reaches full recall up to the highest score, then the
    closing point (precision 1, recall 0). A class without positives gets recall 1
    everywhere (scikit-learn's current convention; the old one divided by zero).
    """
    class_scores = np.asarray(class_scores, dtype=np.float64)
    is_positive = np.asarray(is_positive, dtype=bool)
    order = np.argsort(class_scores, kind="mergesort")[::-1]
    sorted_scores = class_scores[order]
    sorted_positive = is_positive[order]
    # Last index of each run of equal scores: the counts at that threshold.
    run_ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(sorted_positive)[run_ends]
    false_positives = (run_ends + 1) - true_positives
    precision = true_positives / (true_positives + false_positives)
    if true_positives[-1] == 0:
        recall = np.ones_like(precision)
        full_recall = precision.size - 1
    else:
        recall = true_positives / true_positives[-1]
        full_recall = int(np.searchsorted(true_positives, true_positives[-1]))
    keep = slice(full_recall, None, -1)
    return np.r_[precision[keep], 1.0], np.r_[recall[keep], 0.0]


@dataclass(frozen=True)
class ClassifierMetrics:
    """Every metric of one evaluated model on one test set; `to_dict` uses MLTK's key names."""

    classes: list[str]
    n_samples: int
    class_counts: list[int]
    overall_accuracy: float
    balanced_accuracy: float
    class_accuracies: list[float]
    fpr: list[list[float]]
    tpr: list[list[float]]
    roc_auc: list[float]
    roc_auc_avg: float
    roc_thresholds: list[float]
    precision: list[list[float]]
    recall: list[list[float]]
    confusion_matrix: list[list[int]]

    @property
    def classes_without_samples(self) -> list[str]:
        """Classes the test set has no sample of: their accuracy and ROC AUC are undefined. The
        JSON keeps what MLTK's formulas give them (accuracy 0; an ROC AUC from the false-positive
        curve alone, since the first point is forced to TPR 1), which `roc_auc_avg` averages in;
        `roc_auc_avg_present` leaves them out."""
        return [name for name, count in zip(self.classes, self.class_counts, strict=True) if not count]

    @property
    def roc_auc_avg_present(self) -> float:
        """The mean ROC AUC over the classes that have samples (`roc_auc_avg` averages the others in too)."""
        present = [auc for auc, count in zip(self.roc_auc, self.class_counts, strict=True) if count]
        return float(np.mean(present)) if present else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClassifierMetrics:
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class WordErrors:
    """How the clips of one spoken word were misclassified (its class is the label's)."""

    word: str
    clips: int
    errors: int
    predicted_as: dict[str, int]  # wrong class -> clips, most first

    @property
    def error_rate(self) -> float:
        return self.errors / self.clips if self.clips else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def errors_by_word(
    scores: np.ndarray, labels: np.ndarray, words: list[str], classes: list[str]
) -> list[WordErrors]:
    """Errors per spoken word (e.g. "go" under `_unknown_`), most errors first, then by name:
    which words a class's errors come from, which a confusion matrix of classes cannot show."""
    scores, labels = _check(scores, labels)
    if len(words) != labels.size:
        raise ValueError(f"{len(words)} words for {labels.size} samples")
    predicted = predicted_classes(scores)
    spoken = np.asarray(words)
    result = []
    for word in sorted(set(words)):
        members = spoken == word
        wrong = predicted[members][predicted[members] != labels[members]]
        counts = np.bincount(wrong, minlength=len(classes))
        order = sorted((c for c in range(len(classes)) if counts[c]), key=lambda c: (-counts[c], c))
        result.append(
            WordErrors(word, int(members.sum()), int(wrong.size), {classes[c]: int(counts[c]) for c in order})
        )
    return sorted(result, key=lambda entry: (-entry.errors, entry.word))


def compute_metrics(scores: np.ndarray, labels: np.ndarray, classes: list[str]) -> ClassifierMetrics:
    """All metrics at once for scores (n_samples, n_classes) and integer labels."""
    scores, labels = _check(scores, labels)
    if len(classes) != scores.shape[1]:
        raise ValueError(f"{len(classes)} class names for {scores.shape[1]} score columns")
    fpr, tpr, thresholds = roc_curves(scores, labels)
    roc_auc = [trapezoid_auc(f, t) for f, t in zip(fpr, tpr, strict=True)]
    precision, recall = zip(
        *(precision_recall_curve(scores[:, c], labels == c) for c in range(len(classes))), strict=True
    )
    matrix = confusion_matrix(scores, labels)
    return ClassifierMetrics(
        classes=list(classes),
        n_samples=int(labels.size),
        class_counts=[int(n) for n in matrix.sum(axis=1)],
        overall_accuracy=overall_accuracy(scores, labels),
        balanced_accuracy=balanced_accuracy(scores, labels),
        class_accuracies=class_accuracies(scores, labels),
        fpr=fpr.tolist(),
        tpr=tpr.tolist(),
        roc_auc=roc_auc,
        roc_auc_avg=float(np.mean(roc_auc)),
        roc_thresholds=thresholds.tolist(),
        precision=[p.tolist() for p in precision],
        recall=[r.tolist() for r in recall],
        confusion_matrix=matrix.tolist(),
    )
