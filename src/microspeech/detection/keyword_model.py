"""A keyword model for streaming: a .tflite's bytes with its classes and the detection parameters
its SL_PARAMSv1 parameters embed (what the firmware loop needs to run it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microspeech.audio import SAMPLE_RATE
from microspeech.detection.params import DetectionParams, checked_threshold_list


class ModelLoadError(ValueError):
    """A model that cannot be found or used for streaming detection; the message names it."""


class ThresholdListError(ModelLoadError):
    """A stored detection_threshold_list the firmware loop cannot use (hand-edited metadata);
    `detection_threshold`: the model's stored single threshold, which a caller may run instead."""

    def __init__(self, problem: str, detection_threshold: int) -> None:
        super().__init__(f"{problem} (`microspeech tune MODEL --write` replaces it)")
        self.problem = problem
        self.detection_threshold = detection_threshold


@dataclass(frozen=True)
class KeywordModel:
    """A .tflite with what streaming needs from its SL_PARAMSv1 parameters."""

    name: str
    source: str
    tflite_bytes: bytes
    parameters: dict[str, Any]
    classes: list[str]
    detection: DetectionParams
    class_thresholds: list[int] | None

    @property
    def frontend_settings(self) -> Any:
        from microspeech.frontend import FrontendSettings

        if any(key.startswith("fe.") for key in self.parameters):
            return FrontendSettings.from_dict(self.parameters)
        return FrontendSettings()


def load_keyword_model(
    model: bytes | str | Path,
    *,
    classes: list[str] | None = None,
    name: str | None = None,
    source: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> KeywordModel:
    """A keyword model from .tflite bytes or a file (.tflite, or an .mltk.zip holding one): its
    bytes, classes and embedded detection parameters. Model names and folders are resolved by
    `microspeech.models.resolve_model`, above this layer: pass its `.tflite` here.
    `overrides` replace embedded detection parameters before they are checked (None: keep)."""
    from microspeech.tflite.files import TfliteFileError, read_tflite_file
    from microspeech.tflite.metadata import classes_from_parameters, read_parameters

    if isinstance(model, bytes):
        source, data = source or name or "<.tflite bytes>", model
    else:
        try:
            tflite = read_tflite_file(model)
        except TfliteFileError as error:
            raise ModelLoadError(str(error)) from error
        source, data, name = str(tflite.path), tflite.tflite_bytes, name or tflite.name
    try:
        parameters = read_parameters(data)
    except ValueError as error:
        raise ModelLoadError(f"{source}: unreadable model parameters ({error})") from error
    classes = [str(c) for c in classes] if classes is not None else classes_from_parameters(parameters)
    if not classes:
        raise ModelLoadError(
            f"{source}: the model has no 'classes' parameter (SL_PARAMSv1 metadata, which `microspeech "
            "train` and MLTK write into the .tflite); from Python, pass the labels as classes=[...]"
        )
    rate = int(parameters.get("fe.sample_rate_hz", SAMPLE_RATE))
    if rate != SAMPLE_RATE:
        raise ModelLoadError(
            f"{source}: fe.sample_rate_hz={rate}; only {SAMPLE_RATE} Hz models are supported"
        )
    try:
        # Overrides apply before validation: a model storing an invalid value (MLTK's older
        # models store latency_ms=0) runs when the user gives a valid one.
        given = {key: value for key, value in (overrides or {}).items() if value is not None}
        unknown = sorted(set(given) - set(DetectionParams().to_dict()))
        if unknown:
            raise ValueError(f"unknown detection parameter(s) {', '.join(unknown)}")
        detection = DetectionParams.from_dict({**parameters, **given})
    except ValueError as error:
        stored = re.match(r"detection parameter (\w+)=", str(error))
        if stored and stored[1] not in given and not str(source).startswith("<"):
            raise ModelLoadError(
                f"{source}: {error}; the model stores it: `microspeech params {source} --set "
                f"{stored[1]}=VALUE` rewrites it"
            ) from error
        raise ModelLoadError(f"{source}: {error}") from error
    # A threshold given replaces a stored per-class list (as classify_audio --threshold says).
    thresholds = None if "detection_threshold" in given else parameters.get("detection_threshold_list")
    if thresholds is not None:
        try:
            thresholds = checked_threshold_list(thresholds, len(classes))
        except ValueError as error:
            raise ThresholdListError(f"{source}: {error}", detection.detection_threshold) from None
    return KeywordModel(
        name=str(parameters.get("name") or name or "model"),
        source=str(source),
        tflite_bytes=data,
        parameters=parameters,
        classes=classes,
        detection=detection,
        class_thresholds=thresholds,
    )


__all__ = ["KeywordModel", "ModelLoadError", "ThresholdListError", "load_keyword_model"]
