"""`microspeech new-model NAME`: write a spec file that trains as written, from a registered spec."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from microspeech.cli.app import app, console, fail, path_option


@app.command("new-model")
def new_model(
    name: str = typer.Argument(..., help="The new model's name: a letter, then letters, digits or _."),
    source: str = typer.Option(
        "tflite_micro_speech",
        "--from",
        help="The registered model (or spec file) whose architecture and recipe to start from.",
    ),
    keywords: str | None = typer.Option(
        None, "--keywords", help="Comma-separated words to spot instead (e.g. on,off)."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        parser=path_option,
        help="Where to write the spec file (default ./models/NAME.py).",
    ),
) -> None:
    """Write a commented spec file (classes, frontend, layers, training, augmentation, detection)."""
    from microspeech.models import resolve_model_spec
    from microspeech.models.registry import check_model_name, model_source
    from microspeech.models.template import write_spec_file

    try:
        check_model_name(name)
        spec = resolve_model_spec(source, keywords=keywords.split(",") if keywords else None)
    except KeyError as error:
        fail(f"--from {source}: {error.args[0]}")
    except ValueError as error:
        fail(str(error))
    try:
        fail(f"model {name!r} is registered already (in {model_source(name)}); choose another NAME")
    except KeyError:
        pass
    if output is not None and output.suffix != ".py":
        # A spec is found by its .py suffix: `train noext` would look for a registered model.
        fail(f"--output {output}: a spec file's name ends in .py (e.g. {output.with_suffix('.py')})")
    target = output if output is not None else Path("models") / f"{name}.py"
    try:
        path = write_spec_file(spec, name, target, source=source)
    except (FileExistsError, OSError) as error:
        fail(str(error))
    console.print(f"wrote {path}; dry run: microspeech train {shlex.quote(str(path))} --test", markup=False)
