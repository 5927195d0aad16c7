"""Does a .tflite compute the same bytes in every interpreter a user may deploy it with?

LiteRT's reference kernels are the reference; the `tflite-micro` package and Silicon Labs'
TFLM build (from the silabs-mltk wheel, when installed) must give identical int8 outputs on
the same inputs. A mismatch is explained by the first layer whose output differs, found by
running the graph with every operator output exposed (`graph.expose_layer_outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from microspeech.tflite.graph import expose_layer_outputs
from microspeech.tflite.runtime import TfliteRunner, available_backends

__all__ = ["ParityReport", "RuntimeParity", "check_parity", "first_differing_layer"]

REFERENCE_BACKEND = "litert"


@dataclass(frozen=True)
class RuntimeParity:
    """One backend against the reference on the same inputs."""

    backend: str
    samples: int
    identical_samples: int
    prediction_differs: int
    max_abs_difference: int
    first_mismatch_sample: int | None = None
    first_differing_layer: str | None = None

    @property
    def identical(self) -> bool:
        return self.identical_samples == self.samples

    def describe(self) -> str:
        text = f"{self.backend}: {self.identical_samples}/{self.samples} identical to {REFERENCE_BACKEND}"
        if self.identical:
            return text
        return (
            f"{text}, max difference {self.max_abs_difference}, predicted class differs on "
            f"{self.prediction_differs}; first differing layer: {self.first_differing_layer} "
            f"(sample {self.first_mismatch_sample})"
        )


@dataclass(frozen=True)
class ParityReport:
    """Every compared backend; `identical` when all of them match the reference on every sample."""

    reference: str
    results: list[RuntimeParity] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(result.identical for result in self.results)

    def describe(self) -> str:
        return "; ".join(result.describe() for result in self.results)

    def to_dict(self) -> dict:
        return {
            "reference": self.reference,
            "identical": self.identical,
            "results": [
                {
                    "backend": r.backend,
                    "samples": r.samples,
                    "identical_samples": r.identical_samples,
                    "prediction_differs": r.prediction_differs,
                    "max_abs_difference": r.max_abs_difference,
                    "first_mismatch_sample": r.first_mismatch_sample,
                    "first_differing_layer": r.first_differing_layer,
                }
                for r in self.results
            ],
        }


def first_differing_layer(tflite_bytes: bytes, sample: np.ndarray, backend: str) -> str | None:
    """Label ("<op index> <OP_NAME> <tensor>") of the first operator whose output differs, or None."""
    exposed, labels = expose_layer_outputs(tflite_bytes)
    reference = TfliteRunner(exposed, REFERENCE_BACKEND, single_output=False).predict_outputs(sample)
    other = TfliteRunner(exposed, backend, single_output=False).predict_outputs(sample)  # type: ignore[arg-type]
    for label, expected, actual in zip(labels, reference, other, strict=True):
        if not np.array_equal(expected, actual):
            return label
    return None


def check_parity(
    tflite_bytes: bytes, features: np.ndarray, backends: tuple[str, ...] | None = None
) -> ParityReport:
    """Run `features` (N, ...) through LiteRT and each other backend; count identical outputs.

    `backends` defaults to every backend this machine has besides the reference (tflm, and
    silabs-tflm when the MLTK wheel is installed).
    """
    features = np.asarray(features)
    if len(features) == 0:
        raise ValueError("parity check: no features to compare on")
    others = backends or tuple(b for b in available_backends() if b != REFERENCE_BACKEND)
    expected = TfliteRunner(tflite_bytes, REFERENCE_BACKEND).predict(features)
    results = []
    for backend in others:
        actual = TfliteRunner(tflite_bytes, backend).predict(features)  # type: ignore[arg-type]
        flat_expected = expected.reshape(len(features), -1)
        flat_actual = actual.reshape(len(features), -1)
        same = np.all(flat_expected == flat_actual, axis=1)
        difference = np.abs(flat_expected.astype(np.int64) - flat_actual.astype(np.int64))
        mismatches = np.flatnonzero(~same)
        first = int(mismatches[0]) if mismatches.size else None
        results.append(
            RuntimeParity(
                backend=backend,
                samples=len(features),
                identical_samples=int(same.sum()),
                prediction_differs=int(np.sum(flat_expected.argmax(1) != flat_actual.argmax(1))),
                max_abs_difference=int(difference.max()) if difference.size else 0,
                first_mismatch_sample=first,
                first_differing_layer=(
                    None if first is None else first_differing_layer(tflite_bytes, features[first], backend)
                ),
            )
        )
    return ParityReport(reference=REFERENCE_BACKEND, results=results)
