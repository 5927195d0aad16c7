"""`microspeech evaluate`: clip evaluation (float and int8 side by side) or, with --streaming, streaming."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from microspeech.cli.app import app, console, fail, path_option, warn_if_unfinished

if TYPE_CHECKING:
    from microspeech.evaluation.streaming import StreamingReport

# A training run's folders that its own saves replace (checkpoint.old and .partial while a save swaps).
RUN_FOLDERS = ("checkpoint", "checkpoint.old", "checkpoint.partial", "logs")


def _print_streaming(report: StreamingReport) -> None:
    from microspeech.detection.classify import whole_volume_gain

    table = Table(title="Streaming evaluation")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for key, value in report.headline():
        # As streaming.json holds it (already rounded): .4g rounded it again (0.30435 -> 0.3044).
        table.add_row(key, escape(f"{value:g}" if isinstance(value, float) else str(value)))
        if key == "fa_per_hour":
            low, high = report.fa_per_hour_interval
            table.add_row("fa_per_hour, 95% interval", f"{low:.3g}-{high:.3g}")
    console.print(table)
    if report.false_accepts_by_word:
        words = ", ".join(f"{word} {count}" for word, count in report.false_accepts_by_word.items())
        console.print(f"False accepts by the word playing: {words}", markup=False)
    settings = ", ".join(f"{key}={value}" for key, value in report.params.to_dict().items())
    console.print(f"Detection parameters: {settings}", markup=False)
    if report.detection_threshold_list is not None:
        listed = ", ".join(
            f"{name} {threshold}"
            for name, threshold in zip(report.classes, report.detection_threshold_list, strict=True)
        )
        console.print(f"Per-class thresholds (used instead of detection_threshold): {listed}", markup=False)
    if report.wrapped_samples:
        console.print(
            f"{report.wrapped_samples:,} samples of the stream pass the int16 limits at volume_gain "
            f"{whole_volume_gain(report.params.volume_gain)} and wrap around, as on the part",
            markup=False,
        )
    console.print(f"Results written to {report.output_dir}", markup=False)


@app.command()
def evaluate(
    ctx: typer.Context,
    model: str = typer.Argument(
        ..., help="Model name, model directory, .keras or .h5 file (the float model) or bare .tflite file."
    ),
    tflite: bool = typer.Option(
        False, "--tflite", help="Evaluate only the int8 .tflite (default: float and int8)."
    ),
    tflm: bool = typer.Option(False, "--tflm", help="Short for --runtime tflm."),
    runtime: str = typer.Option(
        None,
        "--runtime",
        help="Interpreter of the int8 .tflite: litert (default), tflm (tflite-micro package) or "
        "silabs-tflm (Silicon Labs' TFLM build from the MLTK wheel: the kernels of the part).",
    ),
    dataset: str = typer.Option(
        None,
        "--dataset",
        help="Dataset name or folder (default: the test split of the training dataset the model's manifest "
        "records, for --streaming too; for a model without one, e.g. a bare .tflite, the official test set).",
    ),
    output: Path = typer.Option(
        None,
        "--output",
        parser=path_option,
        help="Results folder (default: eval/ beside the model; for an .mltk.zip, ./NAME-eval).",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed for anything sampled (silence slices, streaming audio)."
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    word_offset: float = typer.Option(
        0.0,
        "--word-offset",
        help="Where each trimmed word sits in the window, as a fraction of the room left: "
        "0 left-aligns (the default, as validation), 0.5 centres, 1 right-aligns.",
    ),
    streaming: bool = typer.Option(
        False,
        "--streaming",
        help="Streaming evaluation: keywords in long noisy audio, through the detector.",
    ),
    minutes: float = typer.Option(10.0, "--minutes", help="With --streaming: minutes of generated audio."),
    snr_db: str = typer.Option(
        "10",
        "--snr-db",
        help="With --streaming: keyword-to-noise ratio(s) in dB, e.g. 5,10,20 (each word draws one); "
        "inf: clean.",
    ),
    segmented: bool = typer.Option(
        False,
        "--segmented",
        help="With --streaming: each --snr-db value a segment of its own, played one after the "
        "other (as benchmarks/detection.py: --snr-db inf,30,20,10,5,0 --segmented), so clean can "
        "be one of them.",
    ),
    noise_dataset: str = typer.Option(
        None, "--noise-dataset", help="With --streaming: the dataset whose background noise to use."
    ),
) -> None:
    """Score the test clips once each; write eval-results.json, summary.txt and plots."""
    from microspeech.checks import (
        OptionError,
        check_minutes,
        check_number,
        check_output_folder,
        check_seed,
        parse_snr_list,
    )

    def given(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is not None and source.name != "DEFAULT"

    try:
        # Options of one mode are refused in the other, not ignored.
        stream_only = {
            "minutes": "--minutes",
            "snr_db": "--snr-db",
            "segmented": "--segmented",
            "noise_dataset": "--noise-dataset",
        }
        clip_only = {"word_offset": "--word-offset", "tflite": "--tflite"}
        for name, option in (stream_only if not streaming else clip_only).items():
            if given(name):
                raise OptionError(
                    f"{option} applies to --streaming only"
                    if not streaming
                    else f"{option} applies to the clip evaluation only, not --streaming"
                )
        check_seed(seed)
        check_number(word_offset, "--word-offset", low=0.0, high=1.0)
        if streaming:
            check_minutes(minutes)
            snrs = parse_snr_list(snr_db, "--snr-db", segmented=segmented)
        if output is not None:
            check_output_folder(output, "--output")
    except OptionError as error:
        fail(str(error))
    if output is not None:
        _refuse_output_in_the_run(output)
    warn_if_unfinished(model)
    if streaming:
        from microspeech.evaluation.evaluate import choose_backend
        from microspeech.evaluation.streaming import evaluate_streaming

        try:
            report = evaluate_streaming(
                model,
                dataset=dataset,
                minutes=minutes,
                snr_db=snrs if len(snrs) > 1 else snrs[0],
                seed=seed,
                output_dir=output,
                noise_dataset=noise_dataset,
                backend=choose_backend(tflm, runtime),
                segmented=segmented,
                plot=not no_plots,
            )
        except (FileNotFoundError, ValueError, RuntimeError) as error:  # a runtime refusing the model
            fail(str(error))
        _print_streaming(report)
        return

    from microspeech.evaluation.evaluate import evaluate_model
    from microspeech.evaluation.report import most_errors_line, rich_table

    try:
        report = evaluate_model(
            model,
            tflite=tflite,
            tflm=tflm,
            runtime=runtime,
            dataset=dataset,
            output_dir=output,
            seed=seed,
            plots=not no_plots,
            word_offset=word_offset,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # a runtime refusing the model
        fail(str(error))
    console.print(rich_table(report))
    if (line := most_errors_line(report)) is not None:
        console.print(line, markup=False)
    console.print(f"Results written to {report.output_dir}", markup=False)


def _refuse_output_in_the_run(output: Path) -> None:
    """--output inside a training run's checkpoint/ or logs/ (any run's, not only the model's):
    results there made the folder one `train --output` refuses ("holds checkpoint/, which no
    microspeech run wrote"), and a --resume replaced checkpoint/ with them in it."""
    target = output.resolve()
    for folder in (target, *target.parents):
        if folder.name in RUN_FOLDERS and _training_run(folder.parent):
            fail(f"--output {output}: inside the training run's {folder.name}/ ({folder}); name another")


def _training_run(folder: Path) -> bool:
    """A folder `train` wrote into: its train.log, or a manifest.json that records a spec (a web
    project's manifest.json beside its logs/ is none)."""
    from microspeech.models.artifacts import ModelArtifacts

    artifacts = ModelArtifacts(folder, "")  # what it holds, whatever the model's name
    return artifacts.log_written_by_training or artifacts.manifest_written_by_training
