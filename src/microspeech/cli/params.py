"""`microspeech params`: print the SL_PARAMSv1 parameters embedded in a .tflite."""

from __future__ import annotations

import json
import math

import typer
from rich.markup import escape
from rich.table import Table

from microspeech.cli.app import app, console, fail, model_file, shown_as, warn_if_unfinished


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


@app.command("params")
def params_command(
    model: str = typer.Argument(..., help="A .tflite file or a trained model's name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table (bytes as hex)."),
) -> None:
    """Print the model parameters (MLTK SL_PARAMSv1 metadata) embedded in a .tflite."""
    from microspeech.models import ModelResolutionError
    from microspeech.tflite.metadata import ParameterError, read_parameters

    try:
        warn_if_unfinished(model)  # an interrupted run's parameters are not calibrated
        path = model_file(model, "tflite")
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
