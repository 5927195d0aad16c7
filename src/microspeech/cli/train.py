"""`microspeech train MODEL`: train a registered model or a spec file end to end (float .keras +
int8 .tflite); `--test` (or NAME-test) is the dry run, `--keywords` the same model on other words."""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING

import typer

from microspeech.cli.app import app, console, fail

if TYPE_CHECKING:
    from pathlib import Path

    from microspeech.models import ModelSpec


@app.command()
def train(
    name: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="Registered model name (see `microspeech list`; add -test for a dry run) or a spec "
        "file's path (./my_model.py).",
    ),
    dataset: list[str] = typer.Option(
        [],
        "--dataset",
        "-d",
        help="speech_commands_v2, synthetic, or a dataset folder PATH; repeat it to train on several "
        "together (each keeps its own splits; background noise from all). Default: synthetic; for a "
        "dry run synthetic-tiny (made in seconds on first use).",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same model."),
    output: str | None = typer.Option(
        None, "--output", "-o", help="Output folder (default ~/.microspeech/models/NAME)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run from its last checkpoint."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Override the spec's maximum number of epochs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    test: bool = typer.Option(
        False, "--test", help="Dry run (as NAME-test): a few clips per class, 3 epochs, batch 3."
    ),
    keywords: str | None = typer.Option(
        None,
        "--keywords",
        help="Comma-separated words to spot instead of the spec's (_unknown_ and _silence_ kept), "
        "e.g. on,off; the model is named NAME-on-off (its folder too).",
    ),
    max_fa_per_hour: float | None = typer.Option(
        None,
        "--max-fa-per-hour",
        help="False-accept budget for the checkpoint choice and the calibrated detection parameters "
        "(default: the spec's, 2 for tflite_micro_speech).",
    ),
    calibration_runtime: str | None = typer.Option(
        None,
        "--calibration-runtime",
        help="Interpreter whose scores calibrate the detection parameters: litert (default), tflm or "
        "silabs-tflm (Silicon Labs' TFLM from the MLTK wheel: the part's kernels and rounding, so the "
        "calibrated operating point holds on the part; the calibration takes about 5-7x as long).",
    ),
) -> None:
    """Train MODEL on a dataset: NAME.keras, NAME.tflite (int8 + parameters), history, logs, manifest."""
    from microspeech.data.pipeline import DatasetError
    from microspeech.files import LockedError
    from microspeech.models import resolve_model_spec
    from microspeech.tflite.convert import QuantizationError
    from microspeech.training import train_model
    from microspeech.training.trainer import CalibrationError, ResumeError

    try:
        words = None if keywords is None else keywords.split(",")
        spec = resolve_model_spec(name, keywords=words, dry_run=test)
    except KeyError as error:
        fail(str(error.args[0]))
    except ValueError as error:
        fail(str(error))
    from microspeech.checks import MAX_FA_PER_HOUR, OptionError, check_int, check_number

    if not dataset:  # a dry run waited minutes for the 4,680-clip synthetic set on first use
        dataset = ["synthetic-tiny" if spec.name.endswith("-test") else "synthetic"]

    if epochs is not None:
        try:
            check_int(epochs, "--epochs", low=1, high=100_000)
        except OptionError as error:
            fail(str(error))
    if max_fa_per_hour is not None:
        import dataclasses

        try:  # at most one false accept a millisecond, as `tune` takes it; inf broke calibration
            check_number(max_fa_per_hour, "--max-fa-per-hour", above=0.0, high=MAX_FA_PER_HOUR)
        except OptionError as error:
            fail(str(error))
        if not spec.train.stream_validation_minutes > 0:
            fail(f"--max-fa-per-hour: model {name!r} trains without a validation stream; no budget applies")
        train_settings = dataclasses.replace(spec.train, max_fa_per_hour=max_fa_per_hour)
        spec = dataclasses.replace(spec, train=train_settings)
    if calibration_runtime is not None:
        from microspeech.tflite.runtime import check_backend

        try:
            check_backend(calibration_runtime, "--calibration-runtime")
        except ValueError as error:
            fail(str(error))
        if not spec.train.stream_validation_minutes > 0:
            fail(
                f"--calibration-runtime: model {name!r} trains without a validation stream; "
                "nothing is calibrated"
            )
    # The command as parsed (sys.argv is the host's when called from Python, e.g. in tests).
    command = ["microspeech", "train", name]
    for item in dataset:
        command += ["--dataset", item]
    command += ["--seed", str(seed)]
    command += ["--output", str(output)] if output is not None else []
    command += ["--resume"] if resume else []
    command += ["--epochs", str(epochs)] if epochs is not None else []
    if max_fa_per_hour is not None:  # every digit: the recorded command must rerun the same budget
        command += ["--max-fa-per-hour", repr(float(max_fa_per_hour)).removesuffix(".0")]
    command += ["--calibration-runtime", calibration_runtime] if calibration_runtime is not None else []
    command += ["--test"] if test else []
    command += ["--keywords", keywords] if keywords else []
    started = time.time()  # a checkpoint older than this is an earlier run's
    try:
        artifacts = train_model(
            spec,
            dataset=dataset,
            seed=seed,
            output=output,
            resume=resume,
            epochs=epochs,
            progress=not quiet,
            console=console,
            command_line=command,
            calibration_runtime=calibration_runtime or "litert",
        )
    except BaseException as err:
        from microspeech import stopping

        # Ctrl-C or kill, also when TensorFlow, tracing a graph, turned it into an error of its own.
        if isinstance(err, KeyboardInterrupt) or stopping.received() is not None:
            _interrupted(spec.name, output, command, started)
        bad_input = (DatasetError, ResumeError, LockedError, QuantizationError, FileNotFoundError, ValueError)
        if isinstance(err, bad_input):
            fail(str(err))
        if isinstance(err, CalibrationError):  # the calibration runtime refused the model, after training
            _uncalibrated(spec, output, err, seed, dataset)
        raise
    console.print(f"model: {artifacts.tflite_path}", markup=False)


def calibration_command(spec: ModelSpec, folder: Path, seed: int, dataset: list[str]) -> list[str]:
    """The `microspeech tune ... --write` that calibrates a trained model as `train --seed SEED
    --dataset ...` would have: with no manifest, tune needs the dataset; with one dataset, the
    stream is the calibration's own (tune builds its stream from one dataset)."""
    from microspeech.training.stream_selection import calibration_stream_seed, calibration_tune_options

    datasets = dataset or ["synthetic-tiny" if spec.name.endswith("-test") else "synthetic"]
    stream_seed = calibration_stream_seed(seed, spec) if len(datasets) == 1 else None
    options = calibration_tune_options(spec, stream_seed)
    return ["microspeech", "tune", str(folder), "--dataset", datasets[0], *options, "--write"]


def _uncalibrated(
    spec: ModelSpec, output: str | None, error: Exception, seed: int, dataset: list[str]
) -> None:
    """The calibration's runtime refused the trained model: where it is, and how to calibrate it
    (with no manifest, tune needs the dataset; one dataset's stream is the calibration's own)."""
    from microspeech.training.artifacts import model_directory

    folder = model_directory(spec.name, output)
    tune = shlex.join(calibration_command(spec, folder, seed, dataset))
    fail(
        f"{error}; the trained .keras and .tflite are in {folder}, not calibrated (no manifest): "
        f"calibrate them as train would with {tune} (--runtime to choose the interpreter), or "
        "train again with another --calibration-runtime"
    )


def _interrupted(name: str, output: str | None, command: list[str], started: float) -> None:
    """Ctrl-C: say where the run stopped and how to go on, instead of a bare exit status 130.
    A fresh run removes an earlier run's checkpoint only once its data are loaded: one stopped
    before names that checkpoint as none of its own (its --resume advice resumed the other run)."""
    from microspeech import stopping
    from microspeech.cli.app import err_console
    from microspeech.models import ModelArtifacts
    from microspeech.training.artifacts import ResumeError, load_checkpoint, model_directory

    artifacts = ModelArtifacts(model_directory(name, output), name)
    try:
        checkpoint = load_checkpoint(artifacts.checkpoint_dir)
    except ResumeError:
        checkpoint = None
    folder = artifacts.checkpoint_dir
    states = [
        state
        for state in (folder / "state.json", folder.with_name(folder.name + ".old") / "state.json")
        if state.is_file()
    ]
    # 2 s: file systems that keep coarse times (FAT's 2 s) date a file written just now earlier.
    newest = max((state.stat().st_mtime for state in states), default=started)
    earlier = "--resume" not in command and newest < started - 2.0
    if checkpoint is None or earlier:
        advice = "no epoch was saved yet; run the command again to start over"
    else:
        again = [*command, "--resume"] if "--resume" not in command else command
        saved = int(checkpoint[1]["epoch"]) + 1  # the state counts epochs from 0
        advice = f"the last saved epoch is {saved}; continue with: {shlex.join(again)}"
    err_console.print(f"interrupted: {advice}", markup=False)
    raise typer.Exit(stopping.exit_status())
