"""`microspeech view`: draw the model (SVG + PNG), or open it in Netron."""

from __future__ import annotations

from pathlib import Path

import typer

from microspeech.cli.app import app, console, fail, model_file, path_option


@app.command("view")
def view_command(
    model: str = typer.Argument(
        ..., help="A .tflite, .keras or .h5 (MLTK's Keras) file, or a trained model's name."
    ),
    tflite: bool = typer.Option(
        False, "--tflite", help="For a model name or .keras file: draw its .tflite, not the Keras model."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        parser=path_option,
        help="Folder for the SVG and PNG (default: next to the model; for an .mltk.zip, the current folder).",
    ),
    netron: bool = typer.Option(
        False, "--netron", help="Open the model in Netron (needs `pip install netron`)."
    ),
) -> None:
    """Diagram of the model's ops, tensor shapes and byte sizes, as SVG and PNG."""
    from microspeech.checks import OptionError, check_output_folder
    from microspeech.models import ModelResolutionError
    from microspeech.tflite.files import is_archive_copy

    try:
        if out is not None:
            check_output_folder(out, "--out")
        path = model_file(model, "tflite" if tflite else "keras")
        # An archive's .tflite is copied to a private temporary folder: its diagram goes where the user is.
        archive = is_archive_copy(path)
        folder = Path.cwd() if archive else path.parent
        if out is None and not netron:  # checked before the drawing, not after
            default = "the current folder, for an archive" if archive else "the model's folder"
            check_output_folder(folder, f"--out (default: {default})")
    except (ModelResolutionError, OptionError) as error:
        fail(str(error))
    if netron:
        _open_in_netron(path)
        return
    from microspeech.tflite.diagram import draw_model
    from microspeech.tflite.summary import summarize_keras, summarize_tflite

    try:
        summary = summarize_tflite(path) if path.suffix == ".tflite" else summarize_keras(path)
        written = draw_model(summary, out or folder, stem=f"{path.stem}{path.suffix.replace('.', '-')}")
    except (ValueError, OSError) as error:
        fail(str(error))
    for file in written:
        console.print(f"wrote {file}", markup=False)


def _open_in_netron(path: Path) -> None:
    try:
        import netron  # type: ignore[import-not-found]
    except ImportError:
        fail(
            "Netron is not installed: `pip install netron` (or open the file in https://netron.app); "
            f"without --netron, `microspeech view {path}` draws an SVG/PNG diagram instead",
        )  # exit status 2, as every other missing optional package (sounddevice, the MVP simulator)
    console.print(f"serving {path} in Netron; press Ctrl-C to stop", markup=False)
    netron.start(str(path))
    netron.wait()
