"""Identical int8 outputs in LiteRT, tflite-micro and Silicon Labs' TFLM on every dev-bundle clip.

For MLTK's shipped model and for each of our trained models (a model folder with its .keras),
the .keras is converted twice in this run: as microspeech converted it before the parity fix
(per-channel FULLY_CONNECTED, input RESHAPE kept) and as it converts now (per-tensor
FULLY_CONNECTED, input 1x49x40x1). Each .tflite runs on all clips of the dev test bundle in
the three runtimes; the table counts clips whose outputs are identical to LiteRT's, and the
int8 accuracy of each conversion beside the float model's.

    .venv/bin/python benchmarks/runtime_parity.py MODEL_DIR [MODEL_DIR ...] [--dataset PATH]
"""

from __future__ import annotations

import argparse
import platform
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bundles import (
    DEV_TEST_SET,
    description,
    existing_folder,
    fail,
    machine_description,
    mltk_model_zip,
    resolve_models,
    run,
    shared_bundle,
)
from microspeech.data import list_datasets, load_dataset
from microspeech.data.pipeline import make_eval_set
from microspeech.evaluation.evaluate import score_keras
from microspeech.frontend import FrontendSettings
from microspeech.tflite.convert import convert_to_int8
from microspeech.tflite.parity import check_parity
from microspeech.tflite.runtime import TfliteRunner

CLASSES = ["yes", "no", "_unknown_", "_silence_"]


def accuracy(tflite_bytes: bytes, features: np.ndarray, labels: np.ndarray, backend: str = "litert") -> float:
    outputs = TfliteRunner(tflite_bytes, backend).predict(features).reshape(len(features), -1)  # type: ignore[arg-type]
    return float(np.mean(outputs.argmax(1) == labels))


def row(
    label: str, tflite_bytes: bytes, features: np.ndarray, labels: np.ndarray, float_accuracy: str
) -> str:
    report = check_parity(tflite_bytes, features)
    cells = []
    for result in report.results:
        layers = ", ".join(f"{layer} x{count}" for layer, count in result.first_differing_layers.items())
        cells += [
            f"{result.identical_samples}/{result.samples}",
            f"{layers or '-'}; {result.max_first_layer_difference} / {result.max_output_difference} "
            f"/ {result.prediction_differs}",
        ]
    silabs_accuracy = accuracy(tflite_bytes, features, labels, "silabs-tflm")
    return (
        f"| {label} | {' | '.join(cells)} | {float_accuracy} "
        f"| {100 * accuracy(tflite_bytes, features, labels):.2f}% | {100 * silabs_accuracy:.2f}% |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "models", nargs="*", type=Path, help="trained model folders (with .keras and manifest)"
    )
    parser.add_argument(
        "--dataset", type=existing_folder, help="test set folder (default: the dev test bundle)"
    )
    args = parser.parse_args()
    # Before any clip is scored: a bad folder stopped the run after MLTK's model and the models before it.
    targets = resolve_models(args.models, "MODEL_DIR")
    for folder, target in zip(args.models, targets, strict=True):
        if target.keras_path is None or target.training_dataset is None:
            fail(f"MODEL_DIR {folder}: no .keras model, or no training dataset in its manifest")
        training = target.training_dataset  # its validation clips calibrate the conversions
        if training not in list_datasets() and not Path(training).is_dir():
            fail(f"MODEL_DIR {folder}: its training dataset {training} is not there")
    mltk_model_zip()  # exits naming the missing wheel
    import keras  # seconds: after the checks

    dataset = load_dataset(args.dataset or shared_bundle(DEV_TEST_SET, "pass --dataset"))
    test_sets: dict[FrontendSettings, tuple[np.ndarray, np.ndarray]] = {}

    def test_set(frontend: FrontendSettings) -> tuple[np.ndarray, np.ndarray]:
        """(features, labels) of the test clips through `frontend`, computed once per frontend."""
        if frontend not in test_sets:
            eval_set = make_eval_set(dataset, "test", CLASSES, frontend)
            test_sets[frontend] = np.asarray(eval_set.features), np.asarray(eval_set.labels)
        return test_sets[frontend]

    mltk_features, mltk_labels = test_set(FrontendSettings())
    print(machine_description())
    print(f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {len(mltk_labels)} clips of {dataset.root}\n")
    print(
        "| model | tflm = litert | tflm: first differing layers; steps there / at output / class "
        "| silabs-tflm = litert | silabs-tflm: first differing layers; steps there / at output / class "
        "| float acc. | int8 acc. (litert) | int8 acc. (silabs-tflm) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with zipfile.ZipFile(mltk_model_zip()) as archive:
        shipped = archive.read("tflite_micro_speech.tflite")
        print(row("MLTK shipped", shipped, mltk_features, mltk_labels, "-"))
    for folder, target in zip(args.models, targets, strict=True):
        keras_path = target.keras_path
        model = keras.saving.load_model(keras_path, compile=False)
        features, labels = test_set(target.frontend)  # the test clips through the model's own frontend
        float_acc = f"{100 * np.mean(score_keras(keras_path, features).argmax(1) == labels):.2f}%"
        validation = make_eval_set(
            load_dataset(target.training_dataset), "validation", CLASSES, target.frontend
        )
        seed = int(target.manifest.get("seed", 0))
        for label, per_channel in (("before (per-channel FC, input RESHAPE)", True), ("now", False)):
            converted = convert_to_int8(model, np.asarray(validation.features), seed=seed, legacy=per_channel)
            print(row(f"{folder.name} {label}", converted, features, labels, float_acc))


if __name__ == "__main__":
    run(main)
