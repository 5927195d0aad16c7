"""What an evaluation hands back and writes: results per model variant, summary text, rich table.

Every file is written atomically (temporary file in the same folder, then renamed), so an
interrupted evaluation never leaves a half-written `eval-results.json` behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from microspeech.evaluation.metrics import ClassifierMetrics, WordErrors, errors_by_word
from microspeech.files import text_bytes, write_files_atomic

RESULTS_FILE = "eval-results.json"
SUMMARY_FILE = "summary.txt"
WORDS_IN_SUMMARY = 10



def default_results_dir(model_file: Path) -> Path:
    """Where `evaluate` writes without --output, clips and stream alike: `eval/` beside a .tflite or
    .keras (a trained model's folder); for an archive, `<name>-eval` in the current folder (MLTK's
    archives live in installed packages, and several archives often share one folder)."""
    model_file = Path(model_file)
    if model_file.name.endswith(".zip"):
        return Path.cwd() / f"{model_file.name.split('.')[0]}-eval"
    return model_file.parent / "eval"


def manifest_dataset(resolved: Any) -> str | None:
    """The training dataset a resolved model's manifest records (the default of `evaluate`, clips
    and stream, and of `tune --split validation`), None when it records none. ValueError naming the
    manifest for one that cannot be found again: an older manifest's relative path (it would be
    looked up from the current folder, where another dataset may have that name) or a folder gone."""
    from microspeech.data import list_datasets

    entry = resolved.manifest.get("dataset")
    parts = entry.get("parts") if isinstance(entry, dict) else None
    if parts:  # its "root" is the folder the parts share, which is no dataset
        names = ", ".join(str(part.get("root") or part.get("name")) for part in parts)
        raise ValueError(
            f"{resolved.argument} was trained on several datasets ({names}); pass --dataset with one of them"
        )
    recorded = resolved.training_dataset
    if recorded is None:
        return None
    source = manifest_label(recorded, resolved.argument)
    if not Path(recorded).is_absolute() and recorded not in list_datasets():
        raise ValueError(
            f"{source}: a relative path, recorded by an older microspeech, which would be looked up from "
            "the current folder; pass --dataset"
        )
    if Path(recorded).is_absolute() and not Path(recorded).is_dir():
        raise ValueError(f"{source}: that folder is gone; pass --dataset")
    return recorded


def manifest_label(dataset: str, model: str) -> str:
    """How errors name a dataset that a model's manifest chose (not the user's --dataset)."""
    return f"the training dataset {dataset} ({model}'s manifest; pass --dataset for another)"


def checked_results_dir(model_file: Path, output_dir: str | Path | None) -> Path:
    """`output_dir`, or the default of `default_results_dir`, checked writable before any work
    (an evaluation must not run for minutes to fail at its first file); OptionError else."""
    from microspeech.checks import OptionError, check_output_folder

    if output_dir is not None:
        return check_output_folder(Path(output_dir), "--output")
    folder = default_results_dir(model_file)
    try:
        return check_output_folder(folder, "the results folder")
    except OptionError as error:
        raise OptionError(f"{error} (the default beside the model); pass --output FOLDER") from None

@dataclass(frozen=True)
class VariantResult:
    """One model variant (float Keras, int8 on LiteRT, int8 on TFLM) scored on the test clips."""

    variant: str
    runtime: str
    model_path: Path
    metrics: ClassifierMetrics
    scores: np.ndarray
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "runtime": self.runtime,
            "model_path": str(self.model_path),
            "seconds": round(self.seconds, 3),
            **self.metrics.to_dict(),
            "scores": np.round(self.scores, 6).tolist(),
        }


@dataclass
class EvaluationReport:
    """Everything `evaluate_model` measured, and the files it wrote."""

    name: str
    model_dir: Path | None
    dataset: str
    dataset_root: Path
    split: str
    classes: list[str]
    labels: np.ndarray
    clip_paths: list[str | None]
    results: list[VariantResult]
    output_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    word_offset: float = 0.0  # where each trimmed word sat in the window (0 = left-aligned)
    # What each clip says (data.folder.spoken_word), aligned with `labels`; empty when unknown.
    words: list[str] = field(default_factory=list)
    seed: int = 0  # generated _silence_ clips (a dataset without its own) depend on it

    def __repr__(self) -> str:
        # The generated repr printed every label, clip path and score (megabytes for a test set).
        variants = ", ".join(
            f"{r.variant} ({r.runtime}) {100 * r.metrics.overall_accuracy:.2f}%" for r in self.results
        )
        return (
            f"EvaluationReport({self.name!r} on {self.dataset!r} {self.split}: {self.labels.size} clips, "
            f"{variants}; output_dir={self.output_dir})"
        )

    def word_errors(self, variant: str) -> list[WordErrors]:
        """That variant's errors by spoken word, most first ([] without `words`)."""
        if not self.words:
            return []
        return errors_by_word(self.result(variant).scores, self.labels, self.words, self.classes)

    def result(self, variant: str) -> VariantResult:
        for result in self.results:
            if result.variant == variant:
                return result
        raise KeyError(f"no '{variant}' result; evaluated: {', '.join(r.variant for r in self.results)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_type": "classification",
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "dataset": self.dataset,
            "dataset_root": str(self.dataset_root),
            "split": self.split,
            "seed": self.seed,
            "word_offset": self.word_offset,
            "classes": self.classes,
            "n_samples": int(self.labels.size),
            "labels": self.labels.tolist(),
            "clips": self.clip_paths,
            "words": self.words,
            "results": {
                result.variant: {
                    **result.to_dict(),
                    "errors_by_word": [entry.to_dict() for entry in self.word_errors(result.variant)],
                }
                for result in self.results
            },
        }


def _percent(value: float) -> str:
    return f"{100 * value:.3f}%"


NO_SAMPLES = "n/a (no clips)"


def _class_value(metrics: ClassifierMetrics, index: int, value: float) -> str:
    """A class's accuracy or ROC AUC, or n/a where the test set has none of its clips (MLTK's 0)."""
    return _percent(value) if metrics.class_counts[index] else NO_SAMPLES


def _average_auc(metrics: ClassifierMetrics) -> str:
    """MLTK's mean over every class; where some class has no clips, also the mean over those that do."""
    text = _percent(metrics.roc_auc_avg)
    if metrics.classes_without_samples:
        absent = ", ".join(metrics.classes_without_samples)
        text += f" ({_percent(metrics.roc_auc_avg_present)} without {absent})"
    return text


def comparison_rows(report: EvaluationReport) -> list[tuple[str, list[str]]]:
    """(metric, value per variant) rows shared by the summary text and the rich table."""
    results = report.results
    rows = [
        ("Overall accuracy", [_percent(r.metrics.overall_accuracy) for r in results]),
        ("Balanced accuracy", [_percent(r.metrics.balanced_accuracy) for r in results]),
        ("Average ROC AUC", [_average_auc(r.metrics) for r in results]),
    ]
    for index, name in enumerate(report.classes):
        values = [_class_value(r.metrics, index, r.metrics.class_accuracies[index]) for r in results]
        rows.append((f"{name} accuracy", values))
    for index, name in enumerate(report.classes):
        values = [_class_value(r.metrics, index, r.metrics.roc_auc[index]) for r in results]
        rows.append((f"{name} ROC AUC", values))
    rows.append(("Seconds", [f"{r.seconds:.1f}" for r in results]))
    return rows


def _word_lines(entries: list[WordErrors]) -> list[str]:
    wrong = [entry for entry in entries if entry.errors]
    if not wrong:
        return []
    shown = wrong[:WORDS_IN_SUMMARY]
    lines = [f"Errors by spoken word ({len(shown)} of {len(wrong)} words with errors, most first):"]
    for entry in shown:
        taken = ", ".join(f"{name} {count}" for name, count in entry.predicted_as.items())
        share = f"{100 * entry.error_rate:.1f}%"
        lines.append(f"- {entry.word}: {entry.errors} of {entry.clips} ({share}), taken for {taken}")
    return lines


def _variant_block(result: VariantResult, word_errors: list[WordErrors]) -> str:
    """MLTK's summary layout for one variant (sorted best first), the confusion matrix, then the
    words with the most errors."""
    metrics = result.metrics
    lines = [f"[{result.variant}] {result.model_path} ({result.runtime})"]
    lines.append(f"Overall accuracy: {_percent(metrics.overall_accuracy)}")
    lines.append(f"Balanced accuracy: {_percent(metrics.balanced_accuracy)}")
    lines.append("Class accuracies:")
    for index, value in sorted(enumerate(metrics.class_accuracies), key=lambda p: -p[1]):
        lines.append(f"- {metrics.classes[index]} = {_class_value(metrics, index, value)}")
    lines.append(f"Average ROC AUC: {_average_auc(metrics)}")
    lines.append("Class ROC AUC:")
    for index, value in sorted(enumerate(metrics.roc_auc), key=lambda p: -p[1]):
        lines.append(f"- {metrics.classes[index]} = {_class_value(metrics, index, value)}")
    width = max(len(name) for name in metrics.classes) + 2
    lines.append("Confusion matrix (rows: actual, columns: predicted):")
    lines.append(" " * width + "".join(f"{name:>{width}}" for name in metrics.classes))
    for name, row in zip(metrics.classes, metrics.confusion_matrix, strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    lines += _word_lines(word_errors)
    return "\n".join(lines)


def _dataset_label(report: EvaluationReport) -> str:
    if Path(report.dataset) == report.dataset_root:
        return report.dataset
    return f"{report.dataset} ({report.dataset_root})"


def summary_text(report: EvaluationReport) -> str:
    counts = report.results[0].metrics.class_counts
    per_class = ", ".join(f"{name} {count}" for name, count in zip(report.classes, counts, strict=True))
    lines = [
        f"Name: {report.name}",
        "Model Type: classification",
        f"Dataset: {_dataset_label(report)}, split '{report.split}', seed {report.seed}",
        f"Clips: {report.labels.size} ({per_class}), each scored exactly once",
        "",
    ]
    rows = comparison_rows(report)
    first = max(len(label) for label, _ in rows) + 2
    widths = [
        max(len(r.variant), *(len(values[i]) for _, values in rows)) + 2 for i, r in enumerate(report.results)
    ]
    lines.append(
        " " * first + "".join(f"{r.variant:>{w}}" for r, w in zip(report.results, widths, strict=True))
    )
    for label, values in rows:
        lines.append(f"{label:<{first}}" + "".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True)))
    for result in report.results:
        lines += ["", _variant_block(result, report.word_errors(result.variant))]
    return "\n".join(lines) + "\n"


def most_errors_line(report: EvaluationReport, count: int = 3) -> str | None:
    """One line for the console: the words with the most errors of the last variant scored
    (int8 when there is one), e.g. "go 105/233 (104 as no)"; None without words or errors."""
    variant = report.results[-1].variant
    wrong = [entry for entry in report.word_errors(variant) if entry.errors][:count]
    if not wrong:
        return None

    def taken(entry: WordErrors) -> str:
        # Only the most frequent class: "left 68/236 as yes" read as if all 68 were "yes" (59 were).
        name, clips = next(iter(entry.predicted_as.items()))
        return f"as {name}" if clips == entry.errors else f"{clips} as {name}"

    parts = [f"{e.word} {e.errors}/{e.clips} ({taken(e)})" for e in wrong]
    return f"Most errors ({variant}, by spoken word): " + ", ".join(parts)


def rich_table(report: EvaluationReport) -> Table:
    table = Table(title=f"{report.name} on {report.dataset} ({report.labels.size} clips)")
    table.add_column("Metric")
    for result in report.results:
        table.add_column(f"{result.variant} ({result.runtime})", justify="right")
    for label, values in comparison_rows(report):
        table.add_row(label, *values)
    return table


def results_files(report: EvaluationReport, output_dir: Path) -> dict[Path, bytes]:
    """eval-results.json and summary.txt as bytes by their paths in `output_dir`, nothing written yet."""
    return {
        output_dir / RESULTS_FILE: (json.dumps(report.to_dict(), separators=(",", ":")) + "\n").encode(),
        output_dir / SUMMARY_FILE: text_bytes(summary_text(report)),  # the dataset's folder may not be UTF-8
    }


def write_results(report: EvaluationReport, output_dir: Path) -> list[Path]:
    """Write eval-results.json and summary.txt into `output_dir`, as a set; returns their paths."""
    return write_files_atomic(results_files(report, output_dir))
