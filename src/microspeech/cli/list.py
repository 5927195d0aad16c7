"""`microspeech list`: the registered models."""

from __future__ import annotations

from rich.table import Table

from microspeech.cli.app import app, console


@app.command("list")
def list_command() -> None:
    """List the registered models (append -test to a name for a dry run)."""
    from microspeech.models import get_model_spec, list_models

    table = Table("model", "classes", "input", "description")
    for name in list_models():
        spec = get_model_spec(name)
        frames, channels = spec.input_shape
        table.add_row(name, ", ".join(spec.classes), f"{frames}x{channels} int8", spec.description)
    console.print(table)
