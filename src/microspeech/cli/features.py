"""`microspeech features`: the micro frontend's features of an audio file (.npy and/or a PNG)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from microspeech.cli.app import app, console, fail, model_file, path_option, shown_as

if TYPE_CHECKING:
    from microspeech.frontend import FrontendSettings


class FeatureDtype(StrEnum):
    int8 = "int8"
    uint16 = "uint16"


@app.command("features")
def features_command(
    audio: Path = typer.Argument(
        ..., parser=path_option, help="Audio file (any rate, channels or encoding soundfile reads)."
    ),
    out: Path | None = typer.Option(
        None, "--out", parser=path_option, help="Save the features to this .npy file."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", parser=path_option, help="Draw a labelled spectrogram to this .png file."
    ),
    dtype: FeatureDtype = typer.Option(
        FeatureDtype.int8, "--dtype", help="int8 (what the model sees) or uint16 (raw frontend output)."
    ),
    whole: bool = typer.Option(
        False, "--whole", help="Every window of the recording (as firmware streams it), not one padded clip."
    ),
    settings_file: Path | None = typer.Option(
        None,
        "--settings",
        parser=path_option,
        help="JSON with MLTK fe.* keys (default: MLTK's own tflite_micro_speech frontend; the registered "
        "tflite_micro_speech changes its noise estimate: --model reads a model's own).",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Use the frontend settings stored in this model (.tflite, or a trained name)."
    ),
) -> None:
    """Bit-exact TFLM micro-frontend features (MLTK's AudioFeatureGenerator) of one recording."""
    from microspeech.audio import AudioError
    from microspeech.checks import OptionError, check_output_file
    from microspeech.frontend import FrontendSettings, FrontendSettingsError
    from microspeech.frontend.files import features_from_file, save_features
    from microspeech.frontend.plot import plot_features

    if audio.is_dir():
        fail(f"{audio}: is a folder, not an audio file")
    if not audio.exists():  # a pipe, <(...), is no regular file but reads as one
        fail(f"{audio}: no such file")
    try:
        for option, path in (("--out", out), ("--plot", plot)):
            if path is not None:
                check_output_file(path, option)
    except OptionError as error:
        fail(str(error))
    if out is not None and out.suffix != ".npy":
        fail(f"--out {out}: features are saved as .npy; use a .npy file name")
    if plot is not None and plot.suffix.lower() != ".png":
        fail(f"--plot {plot}: the spectrogram is drawn as PNG; use a .png file name")
    if settings_file is not None and model is not None:
        fail("--settings and --model both give frontend settings; use one")
    settings = FrontendSettings()
    if settings_file is not None:
        try:
            values = json.loads(settings_file.read_text())
            if not isinstance(values, dict):
                raise FrontendSettingsError(
                    f"expected a JSON object of fe.* keys, got a {type(values).__name__}"
                )
            settings = FrontendSettings.from_dict(values)
        except IsADirectoryError:
            fail(f"--settings {settings_file}: is a folder; give a JSON file of fe.* settings")
        except OSError as error:
            fail(f"--settings {settings_file}: not readable ({error.strerror or error})")
        except UnicodeDecodeError:
            fail(f"--settings {settings_file}: not a text file; give a JSON file of fe.* settings")
        except (json.JSONDecodeError, FrontendSettingsError) as error:
            fail(f"--settings {settings_file}: {error}")
    if model is not None:
        settings = _model_settings(model)
    try:
        result = features_from_file(audio, settings, dtype.value, whole=whole)
    except (AudioError, OSError) as error:
        fail(str(error))
    features = result.features
    seconds = result.source_samples / settings.sample_rate_hz
    note = "".join(f", {conversion}" for conversion in result.conversions)
    adjustments = {"padded": ", zero-padded", "loudest": ", cut to its loudest second (as training reads it)"}
    note += adjustments.get(result.adjusted, "")
    console.print(
        f"{audio}: {seconds:.3f} s{note} -> {features.shape[0]} frames x {features.shape[1]} channels "
        f"{features.dtype}, min {features.min()}, max {features.max()}, mean {features.mean():.1f}",
        markup=False,
    )
    if out is not None:
        console.print(f"wrote {save_features(features, out)}", markup=False)
    if plot is not None:
        written = plot_features(features, plot, settings, title=audio.name, audio=result.audio)
        console.print(f"wrote {written}", markup=False)


def _model_settings(model: str) -> FrontendSettings:
    """The fe.* settings in a model's SL_PARAMSv1 metadata (as MLTK and our training write them)."""
    from microspeech.frontend import FrontendSettings, FrontendSettingsError  # noqa: F811
    from microspeech.models import ModelResolutionError
    from microspeech.tflite.metadata import read_parameters

    try:
        path = model_file(model, "tflite")
        params = read_parameters(path)
    except (ModelResolutionError, OSError, ValueError) as error:
        fail(f"--model {model}: {error}")
    if not any(str(key).startswith("fe.") for key in params):
        fail(f"--model {model}: {shown_as(model, path)} stores no frontend settings (fe.* parameters)")
    try:
        return FrontendSettings.from_dict(params)
    except FrontendSettingsError as error:
        fail(f"--model {model}: {error}")
