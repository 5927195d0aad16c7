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
    from microspeech.models.registry import DRY_RUN_SUFFIX, check_model_name, model_source
    from microspeech.models.template import write_spec_file

    if source.endswith(DRY_RUN_SUFFIX):
        # A dry run's settings (3 epochs, 12 clips a class) would become the new model's recipe.
        fail(f"--from {source}: that is a dry run's recipe; start from {source[: -len(DRY_RUN_SUFFIX)]}")
    try:
        check_model_name(name)
        spec = resolve_model_spec(source, keywords=None if keywords is None else keywords.split(","))
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
    except (FileExistsError, ValueError) as error:
        fail(str(error))
    except OSError as error:
        # e.g. a file where a folder of the path should be, a read-only folder
        where = f" ({error.filename})" if error.filename and str(error.filename) != str(target) else ""
        fail(f"--output {target}: cannot write it: {error.strerror or error}{where}")
    console.print(f"wrote {path}; dry run: microspeech train {shlex.quote(str(path))} --test", markup=False)
