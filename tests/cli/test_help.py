"""Every command's --help, as a new user first reads it."""

from __future__ import annotations

import inspect

import typer
from typer.testing import CliRunner

from microspeech.cli import app


def _commands(group, path: tuple[str, ...] = ()):  # noqa: ANN001 (typer's own click group)
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):  # a group (`dataset`)
            yield from _commands(command, (*path, name))


def test_each_paragraph_of_a_commands_help_is_wrapped_as_one():
    # typer 0.29 kept the docstring's source line breaks after the first paragraph, so rich wrapped
    # each source line on its own: help read ragged at any width (tune, export, classify_audio).
    root = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(root):
        paragraphs = inspect.cleandoc(command.help or "").partition("\f")[0].split("\n\n")[1:]
        if not paragraphs:
            continue
        shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "1000"})
        assert shown.exit_code == 0, shown.output
        lines = [line.strip() for line in shown.output.splitlines()]
        for paragraph in paragraphs:
            one_line = " ".join(line.strip() for line in paragraph.splitlines())
            assert one_line in lines, f"{' '.join(path)} --help:\n{shown.output}"
            checked += 1
    assert checked >= 3  # tune, export and classify_audio have a second paragraph


def test_a_group_given_alone_prints_its_help_without_an_empty_error():
    # `microspeech` and `microspeech dataset` alone printed the help, then "error:  (see: ...)".
    for args in ([], ["dataset"]):
        result = CliRunner().invoke(app, args)
        assert "Usage" in result.output and "error" not in result.output, result.output


def test_an_on_off_flag_shows_no_value_to_give():
    # "--quiet -q <bool>" was read as "--quiet true": "Got unexpected extra argument(s) (true)".
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "<int>" in result.output  # --seed still shows its type
