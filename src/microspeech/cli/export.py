"""`microspeech export`: firmware sources for a trained model."""

from __future__ import annotations

from pathlib import Path

import typer

from microspeech.cli.app import app, console, fail, model_file, path_option


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
    from microspeech.tflite.c_export import export_c
    from microspeech.tflite.metadata import ParameterError

    try:
        check_output_folder(c_dir, "--c")
        path = model_file(model, "tflite")
        files = export_c(path, c_dir, name=name)
    except (ModelResolutionError, ParameterError, OptionError, ValueError) as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot write into --c {c_dir}: {error}")
    for written in (files.source, files.header, files.settings):
        console.print(f"wrote {written} ({written.stat().st_size:,} bytes)", markup=False)
