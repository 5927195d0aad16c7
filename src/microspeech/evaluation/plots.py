"""PNG plots of classifier metrics: ROC, precision-recall, confusion matrix, TPR/FPR vs threshold.

Figures are built with `matplotlib.figure.Figure` (no pyplot global state, no display
needed) and each file is written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from microspeech.evaluation.metrics import ClassifierMetrics
from microspeech.files import write_files_atomic

# MLTK's zoomed ROC window (its plot_roc), shown next to the full curve.
_ROC_ZOOM = ((0.0, 0.1), (0.5, 1.01))


def _label(name: str) -> str:
    return name.strip("_")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def plot_roc(metrics: ClassifierMetrics, title: str) -> Figure:
    """One-vs-rest ROC per class: the full curve and MLTK's zoom on low FPR."""
    figure = Figure(figsize=(12, 5.5))
    full, zoom = figure.subplots(1, 2)
    for axes, limits in ((full, ((0.0, 1.0), (0.0, 1.01))), (zoom, _ROC_ZOOM)):
        for name, fpr, tpr, auc in zip(
            metrics.classes, metrics.fpr, metrics.tpr, metrics.roc_auc, strict=True
        ):
            axes.plot(fpr, tpr, label=f"{_label(name)} (AUC {auc:.4f})")
        axes.plot([], [], " ", label=f"mean AUC {metrics.roc_auc_avg:.4f}")
        axes.set_xlim(*limits[0])
        axes.set_ylim(*limits[1])
        axes.set_xlabel("False positive rate")
        axes.set_ylabel("True positive rate")
        axes.grid(True)
        axes.legend(loc="lower right")
    full.set_title("ROC")
    zoom.set_title("ROC, low false positive rate")
    figure.suptitle(title)
    return figure


def plot_precision_recall(metrics: ClassifierMetrics, title: str) -> Figure:
    figure = Figure(figsize=(7, 6))
    axes = figure.subplots()
    for name, precision, recall in zip(metrics.classes, metrics.precision, metrics.recall, strict=True):
        axes.plot(recall, precision, label=_label(name))
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.01)
    axes.set_xlabel("Recall")
    axes.set_ylabel("Precision")
    axes.grid(True)
    axes.legend(loc="lower left")
    axes.set_title(f"Precision vs recall: {title}")
    return figure


def plot_confusion_matrix(metrics: ClassifierMetrics, title: str) -> Figure:
    matrix = np.asarray(metrics.confusion_matrix)
    n_classes = len(metrics.classes)
    figure = Figure(figsize=(1.3 * n_classes + 3, 1.3 * n_classes + 2.5))
    axes = figure.subplots()
    # Colour by row share so small classes (silence) are as readable as large ones.
    row_share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axes.imshow(row_share, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = np.arange(n_classes)
    axes.set_xticks(ticks, metrics.classes, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(ticks, metrics.classes)
    for row in range(n_classes):
        for column in range(n_classes):
            colour = "white" if row_share[row, column] > 0.5 else "black"
            axes.text(column, row, str(matrix[row, column]), ha="center", va="center", color=colour)
    axes.set_ylabel("Actual class")
    axes.set_xlabel("Predicted class")
    axes.set_title(f"Confusion matrix: {title}")
    return figure


def plot_rates_vs_threshold(metrics: ClassifierMetrics, title: str) -> Figure:
    """TPR and FPR of each class against the score threshold (score > threshold)."""
    figure = Figure(figsize=(12, 5))
    tpr_axes, fpr_axes = figure.subplots(1, 2)
    for name, tpr, fpr in zip(metrics.classes, metrics.tpr, metrics.fpr, strict=True):
        tpr_axes.plot(metrics.roc_thresholds, tpr, label=_label(name))
        fpr_axes.plot(metrics.roc_thresholds, fpr, label=_label(name))
    for axes, rate in ((tpr_axes, "True positive rate"), (fpr_axes, "False positive rate")):
        axes.set_xlim(0.0, 1.0)
        axes.set_ylim(0.0, 1.01)
        axes.set_xlabel("Threshold")
        axes.set_ylabel(rate)
        axes.grid(True)
        axes.legend(loc="upper right" if axes is fpr_axes else "lower left")
    tpr_axes.set_title("TPR vs threshold")
    fpr_axes.set_title("FPR vs threshold")
    figure.suptitle(title)
    return figure


PLOTS: dict[str, Callable[[ClassifierMetrics, str], Figure]] = {
    "roc": plot_roc,
    "precision_recall": plot_precision_recall,
    "confusion_matrix": plot_confusion_matrix,
    "tpr_fpr": plot_rates_vs_threshold,
}


def render_plots(metrics: ClassifierMetrics, output_dir: Path, prefix: str, title: str) -> dict[Path, bytes]:
    """Every plot as PNG bytes by its path, `<output_dir>/<prefix>-<plot>.png`, nothing written yet."""
    return {output_dir / f"{prefix}-{name}.png": _png(make(metrics, title)) for name, make in PLOTS.items()}


def write_plots(metrics: ClassifierMetrics, output_dir: Path, prefix: str, title: str) -> list[Path]:
    """Write every plot as `<output_dir>/<prefix>-<plot>.png`, as a set; returns the paths."""
    return write_files_atomic(render_plots(metrics, output_dir, prefix, title))
