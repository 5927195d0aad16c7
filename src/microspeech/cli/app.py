"""The Typer application every command module attaches to."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
import typer.core
import typer.rich_utils
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from microspeech import __version__
from microspeech.cli import quiet_import

# TensorFlow's C++ info/warning lines drown the command's own output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
quiet_import.install()

app = typer.Typer(
    name="microspeech",
    help="Train, quantize, evaluate, profile and run tiny keyword-spotting models for microcontrollers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Off a terminal a line is never folded either: a path in a CI log stays whole, copy-pastable.
console = Console(soft_wrap=not sys.stdout.isatty())

# Off a terminal (CI logs, pipes, files) an error is one line however long: hard-wrapping
# at 80 columns would split paths and option names wherever the width happens to fall.
err_console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())


def _one_line_usage_error(error: Any) -> None:
    """Typer's usage errors (an unknown option, `--seed abc`) in the one line every other error
    takes, instead of its multi-line box: what the README promises for any bad input."""
    message = error.format_message()
    if not message.strip():  # `microspeech` or `microspeech dataset` alone: the help says it all
        return
    context = getattr(error, "ctx", None)
    hint = f" (see: {context.command_path} --help)" if context is not None else ""
    err_console.print(f"[bold red]error:[/] {escape(message)}{escape(hint)}")


# Typer prints a usage error through this function (typer.core._main); it stays one line here.
typer.rich_utils.rich_format_error = _one_line_usage_error

_typed_column = typer.core.TyperOption.display_type_rich


def _flags_take_no_value(self: Any, ctx: Any) -> str | None:
    """No type column for an on/off flag: "--quiet <bool>" read as "--quiet true", an error."""
    return None if getattr(self, "is_flag", False) else _typed_column(self, ctx)


typer.core.TyperOption.display_type_rich = _flags_take_no_value  # type: ignore[method-assign]


def _reflowed_paragraphs(paragraphs: list[str], markup_mode: Any) -> str:
    """A help text's paragraphs after the first, each one line for rich to wrap to the terminal:
    typer 0.29 kept the docstring's source line breaks, so every help read ragged at 80 columns.
    A paragraph that starts with \\b keeps its lines, as click's convention has it."""
    return "\n\n".join(
        paragraph if paragraph.startswith("\b") else " ".join(line.strip() for line in paragraph.splitlines())
        for paragraph in paragraphs
    )


typer.rich_utils._fix_linebreaks = _reflowed_paragraphs


def path_option(value: str) -> Path:
    """Typer `parser=` for a path option: "" (an unset shell variable) is refused, where it would
    become the current folder and write there."""
    if not value.strip():
        raise typer.BadParameter("an empty path (an unset shell variable?); give a file or folder")
    return Path(value)


def compact_table(title: str | None = None, **options: Any) -> Table:
    """A table with one space and no rule between its columns: wide tables (tune's sweep, the MVP
    profile) then fit the 80 columns of a file or a CI log, where rich would otherwise cut
    cells short with an ellipsis."""
    return Table(title=title, box=box.SIMPLE_HEAD, padding=0, show_edge=False, **options)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"microspeech {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """microspeech command line."""


def fail(message: str, code: int = 2) -> None:
    """Print a clear error and exit with `code` (no traceback for user mistakes).

    `message` is plain text: brackets in paths or values are printed as they are, never read
    as rich markup.
    """
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", soft_wrap=not err_console.is_terminal)
    raise typer.Exit(code)


def warn_if_unfinished(model: str) -> None:
    """One line on standard error when MODEL is a training run that did not finish, or a .tflite
    whose damaged manifest beside it was passed over."""
    from microspeech.models import ModelResolutionError, resolve_model

    try:
        resolved = resolve_model(model)
    except ModelResolutionError:
        return  # the command's own resolution names the problem
    if resolved.ignored_manifest:
        err_console.print(
            f"[yellow]warning:[/] {escape(resolved.ignored_manifest)}: read {escape(model)} as a file of "
            "its own (its training record is not used)"
        )
    if resolved.unfinished_run:
        err_console.print(
            f"[yellow]warning:[/] {escape(str(resolved.directory))} has no manifest.json: its training did "
            "not finish (see its train.log); the model may be uncalibrated. `microspeech train ... "
            "--resume` completes it"
        )


def model_file(model: str, kind: str = "tflite") -> Path:
    """The `kind` file ("tflite" or "keras") of a MODEL argument, through the one resolver.

    A .tflite or .mltk.zip argument is the int8 model whatever `kind` asks; a .keras argument is
    the Keras model, or for "tflite" the .tflite trained beside it (as classify_audio and tune
    take it); a folder or name with a .tflite and no .keras is its .tflite for either kind (the
    one model there is); an archive's .tflite is copied out for tools that take a path.
    Raises `microspeech.models.ModelResolutionError` with the argument named.
    """
    from microspeech.models import resolve_model
    from microspeech.tflite.files import materialize_tflite

    resolved = resolve_model(model)
    suffix = Path(model).suffix
    if kind == "keras" and suffix not in (".tflite", ".zip") and (resolved.keras_path or not resolved.tflite):
        return resolved.require_keras()
    return materialize_tflite(resolved.require_tflite())


def shown_as(model: str, path: Path) -> str:
    """How to name the file `model_file(model)` gave in output: an archive's .tflite (copied to
    the temporary folder for tools that take a path) by the archive, as classify_audio names it."""
    from microspeech.tflite.files import is_archive_copy

    if not is_archive_copy(path):
        return str(path)
    from microspeech.models import resolve_model

    return str(resolve_model(model).require_tflite().path)
