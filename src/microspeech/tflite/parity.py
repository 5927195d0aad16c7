"""Does a .tflite compute the same bytes in every interpreter a user may deploy it with?

LiteRT's reference kernels (BUILTIN_REF) are the reference; the `tflite-micro` package and Silicon Labs'
TFLM build (from the silabs-mltk wheel, when installed) must give identical int8 outputs on
the same inputs. A mismatch is explained by the first layer whose output differs, found by
running the graph with every operator output exposed (`graph.expose_layer_outputs`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from microspeech.mltk_wheel import INSTALL_HINT
from microspeech.tflite.graph import expose_layer_outputs
from microspeech.tflite.runtime import BACKENDS, TfliteRunner, available_backends

__all__ = ["ParityReport", "RuntimeParity", "check_parity", "first_differing_layer"]

REFERENCE_BACKEND = "litert"


# Silicon Labs' CONV_2D / FULLY_CONNECTED requantize with one rounding (x * M >> n, rounded
# once), LiteRT's and tflite-micro's reference kernels with two (gemmlowp's rounding doubling
# high multiply, then a rounding shift). Where the exact value lies within ~2^-n of a half
# step the two differ by one step; no choice of scales avoids it (MLTK's shipped model shows
# it too). A mismatch that starts as such a one-step difference is a rounding tie; anything
# larger (e.g. per-channel FULLY_CONNECTED on a TFLM that applies one scale) is a defect.
ROUNDING_STEP = 1
MAX_TRACED_SAMPLES = 200


@dataclass(frozen=True)
class RuntimeParity:
    """One backend against the reference on the same inputs."""

    backend: str
    samples: int
    identical_samples: int
    prediction_differs: int
    max_output_difference: int
    first_differing_layers: dict[str, int] = field(default_factory=dict)
    max_first_layer_difference: int = 0

    @property
    def identical(self) -> bool:
        return self.identical_samples == self.samples

    @property
    def rounding_only(self) -> bool:
        """Every mismatch starts as a one-step difference in one layer: rounding ties, not a defect."""
        return self.max_first_layer_difference <= ROUNDING_STEP

    def describe(self) -> str:
        text = f"{self.backend}: {self.identical_samples}/{self.samples} identical to {REFERENCE_BACKEND}"
        if self.identical:
            return text
        layers = ", ".join(f"{label} ({count})" for label, count in self.first_differing_layers.items())
        kind = "rounding ties only" if self.rounding_only else "NOT rounding ties"
        return (
            f"{text}; {kind}: first differing layer {layers}, by up to {self.max_first_layer_difference} "
            f"step(s) there and {self.max_output_difference} at the output; predicted class differs on "
            f"{self.prediction_differs}"
        )

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "samples": self.samples,
            "identical_samples": self.identical_samples,
            "prediction_differs": self.prediction_differs,
            "max_output_difference": self.max_output_difference,
            "first_differing_layers": dict(self.first_differing_layers),
            "max_first_layer_difference": self.max_first_layer_difference,
            "rounding_only": self.rounding_only,
        }


@dataclass(frozen=True)
class ParityReport:
    """Every compared backend against the reference (LiteRT's reference kernels)."""

    reference: str
    results: list[RuntimeParity] = field(default_factory=list)
    # Backends this machine cannot run (silabs-tflm without the MLTK wheel): said, not left out silently.
    skipped: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(result.identical for result in self.results)

    @property
    def rounding_only(self) -> bool:
        return all(result.rounding_only for result in self.results)

    def describe(self) -> str:
        skipped = [f"{backend}: not installed ({INSTALL_HINT}), not checked" for backend in self.skipped]
        return "; ".join([*(result.describe() for result in self.results), *skipped])

    def to_dict(self) -> dict:
        return {
            "reference": self.reference,
            "identical": self.identical,
            "rounding_only": self.rounding_only,
            "results": [result.to_dict() for result in self.results],
            "skipped": list(self.skipped),
        }


class _LayerTracer:
    """The graph with every layer exposed, in the reference and one other backend."""

    def __init__(self, tflite_bytes: bytes, backend: str) -> None:
        exposed, self.labels = expose_layer_outputs(tflite_bytes)
        self.reference = TfliteRunner(exposed, REFERENCE_BACKEND, single_output=False, reference_kernels=True)
        self.other = TfliteRunner(exposed, backend, single_output=False)  # type: ignore[arg-type]

    def first_difference(self, sample: np.ndarray) -> tuple[str, int] | None:
        """(label, largest step difference) of the first layer whose output differs, or None."""
        expected = self.reference.predict_outputs(sample)
        actual = self.other.predict_outputs(sample)
        for label, a, b in zip(self.labels, expected, actual, strict=True):
            if not np.array_equal(a, b):
                return label, int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())
        return None


def first_differing_layer(tflite_bytes: bytes, sample: np.ndarray, backend: str) -> str | None:
    """Label ("<op index> <OP_NAME> <tensor>") of the first operator whose output differs, or None."""
    found = _LayerTracer(tflite_bytes, backend).first_difference(sample)
    return None if found is None else found[0]


def check_parity(
    tflite_bytes: bytes, features: np.ndarray, backends: tuple[str, ...] | None = None
) -> ParityReport:
    """Run `features` (N, ...) through LiteRT and each other backend; count identical outputs.

    `backends` defaults to every backend this machine has besides the reference (tflm, and
    silabs-tflm when the MLTK wheel is installed). Mismatching samples (up to
    MAX_TRACED_SAMPLES) are traced to the first layer that differs.
    """
    features = np.asarray(features)
    if len(features) == 0:
        raise ValueError("parity check: no features to compare on")
    others = backends or tuple(b for b in available_backends() if b != REFERENCE_BACKEND)
    skipped = [] if backends else [b for b in BACKENDS if b not in available_backends()]

    def outputs(backend: str) -> np.ndarray:
        runner = TfliteRunner(tflite_bytes, backend, reference_kernels=backend == REFERENCE_BACKEND)  # type: ignore[arg-type]
        return runner.predict(features).reshape(len(features), -1)

    # Every interpreter at once: LiteRT releases the GIL, Silicon Labs' TFLM runs in a child process.
    with ThreadPoolExecutor(1 + len(others), thread_name_prefix="parity") as pool:
        expected, *others_outputs = pool.map(outputs, (REFERENCE_BACKEND, *others))
    results = []
    for backend, actual in zip(others, others_outputs, strict=True):
        same = np.all(expected == actual, axis=1)
        difference = np.abs(expected.astype(np.int64) - actual.astype(np.int64))
        layers: dict[str, int] = {}
        worst = 0
        mismatches = np.flatnonzero(~same)[:MAX_TRACED_SAMPLES]
        if mismatches.size:
            tracer = _LayerTracer(tflite_bytes, backend)
            for index in mismatches:
                found = tracer.first_difference(features[index])
                if found is not None:
                    layer = " ".join(found[0].split(" ", 2)[:2])  # "<op index> <OP_NAME>"
                    layers[layer] = layers.get(layer, 0) + 1
                    worst = max(worst, found[1])
        results.append(
            RuntimeParity(
                backend=backend,
                samples=len(features),
                identical_samples=int(same.sum()),
                prediction_differs=int(np.sum(expected.argmax(1) != actual.argmax(1))),
                max_output_difference=int(difference.max()) if difference.size else 0,
                first_differing_layers=layers,
                max_first_layer_difference=worst,
            )
        )
    return ParityReport(reference=REFERENCE_BACKEND, results=results, skipped=skipped)
