"""`microspeech summarize`: layers, MACs/OPs, embedded parameters and size of a model."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from microspeech.cli.app import app, console, fail, model_file, shown_as


def _tflite_table(summary) -> Table:  # noqa: ANN001 (ModelSummary, imported lazily)
    table = Table(title=escape(str(summary.path)), title_justify="left", show_lines=True)
    for column in ("Index", "OpCode", "Input(s)", "Output(s)", "Config"):
        table.add_column(column, overflow="fold")
    table.add_column("MACs", justify="right")
    table.add_column("OPs", justify="right")
    from microspeech.tflite.summary import format_units

    for layer in summary.layers:
        table.add_row(*layer.table_cells(), format_units(layer.macs), format_units(layer.ops))
    return table


def _keras_table(summary) -> Table:  # noqa: ANN001 (KerasSummary)
    from microspeech.tflite.summary import format_units

    table = Table(title=escape(f"{summary.path} ({summary.name})"), title_justify="left")
    for column in ("Layer", "Type", "Output shape", "Params", "MACs", "OPs"):
        # Names fold onto a second line, as the .tflite table's do: cut with "…" they were unreadable.
        numbers = column in ("Params", "MACs", "OPs")
        table.add_column(
            column, justify="right" if numbers else "left", overflow="ellipsis" if numbers else "fold"
        )
    for layer in summary.layers:
        table.add_row(
            layer.name,
            layer.kind,
            layer.output_shape,
            f"{layer.params:,}",
            format_units(layer.macs),
            format_units(layer.ops),
        )
    return table


@app.command("summarize")
def summarize_command(
    model: str = typer.Argument(
        ..., help="A .tflite, .keras or .h5 (MLTK's Keras) file, or a trained model's name."
    ),
    tflite: bool = typer.Option(
        False, "--tflite", help="For a model name or .keras file: summarize its .tflite, not the Keras model."
    ),
) -> None:
    """Layer table, Total MACs / Total OPs (MLTK's counting), embedded parameters and file size."""
    from microspeech.cli.params import parameters_table
    from microspeech.models import ModelResolutionError
    from microspeech.tflite.metadata import ParameterError, read_parameters
    from microspeech.tflite.summary import format_units, summarize_keras, summarize_tflite

    try:
        path = model_file(model, "tflite" if tflite else "keras")
        if path.suffix == ".tflite":
            summary = summarize_tflite(path)
            summary.path = shown_as(model, path)
            console.print(_tflite_table(summary))
            params, dtypes = read_parameters(path, with_dtypes=True)
        else:
            summary = summarize_keras(path)
            console.print(_keras_table(summary))
            console.print(f"Total params: {summary.total_params:,} (trainable {summary.trainable_params:,})")
            params, dtypes = {}, {}
    except (ModelResolutionError, ParameterError, ValueError, OSError) as error:
        fail(str(error))
    console.print(f"Total MACs: {format_units(summary.total_macs)}")
    console.print(f"Total OPs: {format_units(summary.total_ops)}")
    if getattr(summary, "uncounted_note", ""):
        console.print(f"[yellow]{summary.uncounted_note}[/]")
    if params:
        console.print(parameters_table(params, dtypes, "Embedded parameters (SL_PARAMSv1)"))
    size = path.stat().st_size
    console.print(
        f"{path.suffix} file size: {format_units(size, precision=1, space=False)}B ({size:,} bytes)"
    )
