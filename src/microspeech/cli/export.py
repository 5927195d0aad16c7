"""`microspeech export`: firmware sources for a trained model."""

from __future__ import annotations

from pathlib import Path

import typer

from microspeech.cli.app import (
    app,
    console,
    err_console,
    fail,
    model_file,
    path_option,
    shown_as,
    warn_if_unfinished,
)


@app.command("export")
def export_command(
    model: str = typer.Argument(..., help="A .tflite file or a trained model's name."),
    c_dir: Path = typer.Option(
        ..., "--c", parser=path_option, help="Folder for the C/C++ sources (created if missing)."
    ),
    name: str | None = typer.Option(None, "--name", help="Symbol prefix (default: the model's name)."),
) -> None:
    """Write the .tflite as an aligned C array (.cc + .h) and a settings header.

    The settings header holds the frontend settings, class names and detection parameters
    embedded in the model, and its tensor shapes and quantization.
    """
    from microspeech.checks import OptionError, check_output_folder
    from microspeech.models import ModelResolutionError
    from microspeech.tflite.c_export import check_symbol_prefix, export_c
    from microspeech.tflite.metadata import ParameterError

    try:
        check_output_folder(c_dir, "--c")
        if name is not None:
            check_symbol_prefix(name, "--name")
        warn_if_unfinished(model)  # an interrupted run's parameters are not calibrated
        path = model_file(model, "tflite")
        shown = shown_as(model, path)  # an archive by its name, not its temporary copy
        _check_detection_parameters(path, shown)
        files = export_c(path, c_dir, name=name, shown_as=shown)
    except (ModelResolutionError, ParameterError, OptionError, ValueError) as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot write into --c {c_dir}: {error}")
    for written in (files.source, files.header, files.settings):
        console.print(f"wrote {written} ({written.stat().st_size:,} bytes)", markup=False)
    for note in files.notes:
        err_console.print(f"note: {note}", markup=False)


def _check_detection_parameters(path: Path, shown: str) -> None:
    """The detection parameters as the firmware would take them: a header with a threshold of
    300 or a list entry "a" builds, and detects nothing or everything on the part."""
    from dataclasses import fields

    from microspeech.detection.params import DetectionParams, checked_threshold_list
    from microspeech.tflite.metadata import classes_from_parameters, read_parameters

    params = read_parameters(path.read_bytes())
    checked = dict(params)
    if checked.get("latency_ms") == 0:
        # MLTK's older models store 0 (its loop runs as fast as it can): the part takes it; only a
        # stream replayed on the host needs a hop length.
        checked["latency_ms"] = 1
    try:
        if any(field.name in checked for field in fields(DetectionParams)):
            DetectionParams.from_dict(checked)
        if "detection_threshold_list" in checked:
            checked_threshold_list(checked["detection_threshold_list"], len(classes_from_parameters(checked)))
    except ValueError as error:
        from microspeech.tflite.files import is_archive_copy

        # params --set rewrites a .tflite, not one inside an archive
        unpack = f"unzip {shown} {path.name}, then " if is_archive_copy(path) else ""
        target = path.name if unpack else shown
        mend = f"{unpack}`microspeech params {target} --set NAME=VALUE`"
        raise ValueError(f"{shown}: {error}; store valid values first ({mend})") from None
