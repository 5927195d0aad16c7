"""`microspeech params`: print the SL_PARAMSv1 parameters embedded in a .tflite."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from microspeech.cli.app import app, console, err_console, fail, model_file, shown_as, warn_if_unfinished
from microspeech.detection.params import THRESHOLD_LIST


def format_value(value: object, limit: int = 80) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parameters_table(params: dict, dtypes: dict[str, str], title: str) -> Table:
    table = Table(title=escape(title), title_justify="left")
    table.add_column("Key", style="cyan", no_wrap=True)
    table.add_column("Value", overflow="fold")
    table.add_column("Type", style="dim")
    for key, value in params.items():
        table.add_row(escape(key), escape(format_value(value)), dtypes.get(key, ""))
    return table


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """--set KEY=VALUE (repeatable) -> {key: value}: detection parameters only, each value as its
    parameter's type; detection_threshold_list takes one 0-255 value per class, comma-separated,
    or `none` to remove a stored list."""
    from microspeech.checks import exact_value
    from microspeech.detection.params import DetectionParams

    kinds = {name: type(value) for name, value in DetectionParams().to_dict().items()}
    values: dict[str, Any] = {}
    for assignment in assignments:
        key, equals, text = assignment.partition("=")
        key, text = key.strip(), text.strip()
        if not equals or not key or not text:
            raise ValueError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set latency_ms=100")
        if key not in kinds and key != THRESHOLD_LIST:
            raise ValueError(
                f"--set {key}: not a detection parameter; these can be set: "
                + ", ".join([*kinds, THRESHOLD_LIST])
            )
        if key in values:
            raise ValueError(f"--set {key}: given twice")
        kind = int if key == THRESHOLD_LIST else kinds[key]
        try:
            if key == THRESHOLD_LIST:
                parts = text.split(",")
                values[key] = None if text.lower() == "none" else [exact_value(part, int) for part in parts]
            elif key == "volume_gain":  # the part multiplies by an int: 1.5 would act as 1
                values[key] = float(exact_value(text, int))
            else:
                values[key] = exact_value(text, kind)
        except (TypeError, ValueError, OverflowError):
            expected = "whole numbers, comma-separated, or none" if key == THRESHOLD_LIST else (
                "a whole number" if kind is int else f"a {kind.__name__}"
            )
            if key == "volume_gain":
                expected = "a whole number (the firmware multiplies the samples by an int; 0 or 1: none)"
            raise ValueError(f"--set {key}={text}: expected {expected}") from None
    return values


@app.command("params")
def params_command(
    model: str = typer.Argument(..., help="A .tflite file or a trained model's name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table (bytes as hex)."),
    assignments: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY=VALUE",
        help="Store a detection parameter in the .tflite, as MLTK's update_params does (repeatable): "
        "detection_threshold, average_window_duration_ms, minimum_count, suppression_ms, volume_gain, "
        "latency_ms, verbose_model_output_logs, or detection_threshold_list (comma-separated, one per "
        "class; none removes it). Every value is checked before the file is rewritten.",
    ),
) -> None:
    """Print the model parameters (MLTK SL_PARAMSv1 metadata) embedded in a .tflite, or change
    its detection parameters with --set."""
    from microspeech.models import ModelResolutionError
    from microspeech.tflite.metadata import ParameterError, read_parameters

    try:
        warn_if_unfinished(model)  # an interrupted run's parameters are not calibrated
        path = model_file(model, "tflite")
        if assignments:
            _store(model, path, parse_assignments(assignments))
        params, dtypes = read_parameters(path, with_dtypes=True)
    except (ModelResolutionError, ParameterError, ValueError, OSError) as error:
        fail(str(error))
    if as_json:
        # Strict JSON has no NaN or infinity: such a value (metadata written by hand) becomes its
        # name as a string, which every JSON parser reads.
        def plain(value: object) -> object:
            if isinstance(value, bytes):
                return value.hex()
            if isinstance(value, float) and not math.isfinite(value):
                return str(value)
            if isinstance(value, list):
                return [plain(item) for item in value]
            return value

        console.print_json(json.dumps({key: plain(value) for key, value in params.items()}, allow_nan=False))
        return
    if not params:
        console.print(f"{shown_as(model, path)}: no SL_PARAMSv1 parameters embedded", markup=False)
        return
    console.print(parameters_table(params, dtypes, f"{shown_as(model, path)} ({len(params)} parameters)"))


def _store(model: str, path: Path, values: dict[str, Any]) -> None:
    """Write `values` into the .tflite itself (not an archive's copy), and note them in the
    trained run's manifest, whose detection_calibration no longer describes the file."""
    from microspeech.evaluation.tuning import record_parameters_set, write_detection_params
    from microspeech.tflite.files import is_archive_copy
    from microspeech.tflite.metadata import read_parameters

    if is_archive_copy(path):
        raise ValueError(
            f"{model}: --set rewrites a .tflite file, not one inside an archive; unpack the archive's "
            ".tflite and give its path"
        )
    stored = read_parameters(path.read_bytes())
    if THRESHOLD_LIST in values and values[THRESHOLD_LIST] is None and THRESHOLD_LIST not in stored:
        # Removing a list the model lacks: said, and neither the file nor its manifest touched.
        values = {key: value for key, value in values.items() if key != THRESHOLD_LIST}
        err_console.print(f"{path} has no {THRESHOLD_LIST}: nothing to remove", markup=False)
        if not values:
            return
    _check_stored(path, stored, values)
    stored_list = stored.get(THRESHOLD_LIST)
    dropped = ""
    if "detection_threshold" in values and THRESHOLD_LIST not in values and stored_list is not None:
        # The firmware reads a stored list instead of the threshold, so the new one did nothing:
        # dropped, as classify_audio --threshold and tune --write drop it.
        values = {**values, THRESHOLD_LIST: None}
        dropped = f"; dropped the stored {THRESHOLD_LIST} {stored_list}, which the device would use instead"
    _check_detects(path, stored, values)
    try:
        write_detection_params(path, values)
    except ValueError as error:  # a value out of range, a list of the wrong length: nothing written
        raise ValueError(f"--set: {error}; {path} is unchanged") from None
    manifest = record_parameters_set(path, values)
    asked = {key: value for key, value in values.items() if not (dropped and key == THRESHOLD_LIST)}
    shown = ", ".join(f"{key}={value}" for key, value in asked.items())
    # On stderr: --json's output stays one JSON document.
    noted = f" (noted in {manifest})" if manifest else ""
    err_console.print(f"stored {shown} in {path}{noted}{dropped}", markup=False)


def _check_detects(path: Path, stored: dict[str, Any], values: dict[str, Any]) -> None:
    """A minimum_count that no averaging window holds: written, nothing would ever be detected."""
    from microspeech.detection.params import DetectionParams

    try:
        scalars = {key: value for key, value in values.items() if key != THRESHOLD_LIST}
        merged = DetectionParams.from_dict({**stored, **scalars})
    except ValueError:  # a value out of range: write_detection_params names it
        return
    if merged.minimum_count > merged.results_in_window:
        asked = {"minimum_count", "average_window_duration_ms", "latency_ms"} & set(values)
        whose = "--set:" if asked else f"{path} stores"  # not the user's option when it was there before
        raise ValueError(
            f"{whose} minimum_count {merged.minimum_count}, but a {merged.average_window_duration_ms} ms "
            f"window holds at most {merged.results_in_window} results at one every {merged.latency_ms} ms: "
            f"nothing would ever be detected; set them too; {path} is unchanged"
        )


def _check_stored(path: Path, stored: dict[str, Any], values: dict[str, Any]) -> None:
    """A stored value that no command can run (MLTK's latency_ms=0, a threshold list of another
    length) and that --set leaves as it is: named as the model's, not blamed on the option."""
    from microspeech.detection.params import PARAM_RANGES, checked_threshold_list
    from microspeech.tflite.metadata import classes_from_parameters

    for key, (low, high) in PARAM_RANGES.items():
        if key in stored and key not in values:
            try:
                ok = low <= float(stored[key]) <= high
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    f"{path} stores {key}={stored[key]!r}, out of range ({low:g} to {high:g}): set it too "
                    f"(--set {key}=VALUE); {path} is unchanged"
                )
    dropping = THRESHOLD_LIST in values or "detection_threshold" in values
    if THRESHOLD_LIST in stored and not dropping:
        try:
            checked_threshold_list(stored[THRESHOLD_LIST], len(classes_from_parameters(stored)))
        except ValueError as error:
            raise ValueError(
                f"{path} stores a {THRESHOLD_LIST} no command can use ({error}): set it too "
                f"(--set {THRESHOLD_LIST}=... or none); {path} is unchanged"
            ) from None
