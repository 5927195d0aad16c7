"""`microspeech tune`: detection parameters for a false-accept budget, optionally stored in the .tflite."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from microspeech.checks import (
    OptionError,
    check_minutes,
    check_number,
    check_output_file,
    check_seed,
    parse_int_list,
    parse_snr_list,
)
from microspeech.cli.app import app, compact_table, console, fail, path_option, warn_if_unfinished
from microspeech.detection.params import PARAM_RANGES

if TYPE_CHECKING:
    from microspeech.data.streams import DetectionSummary
    from microspeech.evaluation.tuning import DetectionSetting


@app.command("tune")
def tune(
    model: str = typer.Argument(..., help="A .tflite, an MLTK .mltk.zip archive, a model folder or name."),
    max_fa_per_hour: float = typer.Option(..., "--max-fa-per-hour", help="False-accept budget per hour."),
    write: bool = typer.Option(False, "--write", help="Store the pick in the .tflite's parameters."),
    dataset: str = typer.Option(
        None,
        "--dataset",
        help="Dataset for the stream (default: the official test set; with --split validation, the "
        "dataset the model was trained on, as its manifest records it).",
    ),
    noise_dataset: str = typer.Option(None, "--noise-dataset", help="Dataset whose background noise to use."),
    split: str = typer.Option(
        "test", "--split", help="Clips of this split (tune on validation, report on test)."
    ),
    minutes: float = typer.Option(10.0, "--minutes", help="Minutes of stream."),
    snr_db: str = typer.Option(
        "10",
        "--snr-db",
        help="Keyword-to-noise ratio(s) in dB, e.g. 5,10,20 (each word draws one); inf: clean.",
    ),
    segmented: bool = typer.Option(
        False,
        "--segmented",
        help="Each --snr-db value a segment of its own, played one after the other, so clean can be one "
        "(as train calibrates: --snr-db inf,30,20,10,5,0 --segmented --split validation).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the stream."),
    thresholds: str = typer.Option("100-255/5", "--thresholds", help="detection_threshold values."),
    windows: str = typer.Option(
        "500,750,1000,1250,1500", "--windows", help="average_window_duration_ms values."
    ),
    counts: str = typer.Option("1,2,3,4,5", "--counts", help="minimum_count values."),
    suppressions: str | None = typer.Option(
        None,
        "--suppressions",
        help="suppression_ms values (default: the model's own; train's calibration sweeps 500-1500).",
    ),
    per_class: bool = typer.Option(
        False,
        "--per-class",
        help="A threshold per keyword (MLTK's detection_threshold_list, which the device uses "
        "instead of detection_threshold); without it one threshold for all, and --write removes a "
        "stored list.",
    ),
    runtime: str = typer.Option(
        "litert",
        "--runtime",
        help="Interpreter that scores the stream: litert (default), tflm (tflite-micro package) or "
        "silabs-tflm (Silicon Labs' TFLM from the MLTK wheel: the part's kernels and their rounding, so "
        "the pick holds on the part; its scoring takes about 5-7x as long).",
    ),
    output: Path = typer.Option(
        None, "--output", parser=path_option, help="Also write the full sweep as JSON here."
    ),
) -> None:
    """Tune detection_threshold, window and minimum_count for a false-accept budget on a stream.

    The grid is replayed over one pass of the model; the best settings are checked with the
    firmware loop and the one with the fewest misses within the budget is shown (and written
    into the .tflite with --write)."""
    from microspeech.evaluation.tuning import (
        PARAM_KEYS,
        THRESHOLD_LIST,
        TUNED_KEYS,
        record_tuning,
        silenced_keywords,
        tune_detection,
        write_detection_params,
    )
    from microspeech.tflite.runtime import check_backend

    try:
        backend = check_backend(runtime, "--runtime")
    except ValueError as error:
        fail(str(error))
    try:
        check_number(max_fa_per_hour, "--max-fa-per-hour", above=0.0, high=3600.0 * 1000)
        snrs = parse_snr_list(snr_db, "--snr-db", segmented=segmented)
        check_minutes(minutes)
        check_seed(seed)
        grid = {
            "thresholds": parse_int_list(
                thresholds,
                "--thresholds",
                low=PARAM_RANGES["detection_threshold"][0],
                high=PARAM_RANGES["detection_threshold"][1],
            ),
            "windows": parse_int_list(
                windows,
                "--windows",
                low=PARAM_RANGES["average_window_duration_ms"][0],
                high=PARAM_RANGES["average_window_duration_ms"][1],
            ),
            "minimum_counts": parse_int_list(
                counts,
                "--counts",
                low=PARAM_RANGES["minimum_count"][0],
                high=PARAM_RANGES["minimum_count"][1],
            ),
            "suppressions": None
            if suppressions is None
            else parse_int_list(
                suppressions,
                "--suppressions",
                low=PARAM_RANGES["suppression_ms"][0],
                high=PARAM_RANGES["suppression_ms"][1],
            ),
        }
        if output is not None:
            check_output_file(output, "--output")
    except OptionError as error:
        fail(str(error))
    warn_if_unfinished(model)
    if output is not None:
        _refuse_output_over_the_model(model, output)
    if write:
        from microspeech.models import resolve_model

        try:
            source = resolve_model(model).require_tflite().path
        except ValueError as error:
            fail(str(error))
        if source.suffix != ".tflite":
            fail(f"--write: {source} is an archive; give the .tflite file to write into")
        # The mode bits too: root may write a file its owner made read-only, which it should not.
        read_only = not source.stat().st_mode & stat.S_IWUSR
        if read_only or not os.access(source, os.W_OK) or not os.access(source.parent, os.W_OK | os.X_OK):
            fail(f"--write: {source} cannot be written (read-only file or folder); nothing was swept")
    try:
        report = tune_detection(
            model,
            max_fa_per_hour=max_fa_per_hour,
            dataset=dataset,
            noise_dataset=noise_dataset,
            split=split,
            minutes=minutes,
            snr_db=snrs,
            seed=seed,
            segmented=segmented,
            per_class=per_class,
            backend=backend,
            **grid,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # a runtime refusing the model
        fail(str(error))
    if output is not None:
        from microspeech.files import write_text_atomic

        write_text_atomic(output, json.dumps(report.to_dict(), indent=2) + "\n")
    if report.ignored_threshold_list is not None:
        console.print(f"[yellow]warning:[/] {escape(report.ignored_threshold_list)}")

    # Short row names, so every digit fits in 80 columns.
    table = compact_table(
        escape(f"{report.model}: {report.minutes:g} min of {report.dataset}, {report.tuning.runtime}")
    )
    for column in ("", "threshold", "window", "count", "suppression", "hits", "misses", "miss", "FA/h"):
        table.add_column(column, justify="right", no_wrap=True)

    def threshold(setting: DetectionSetting) -> str:
        listed = setting.detection_threshold_list
        if not listed:
            return str(setting.detection_threshold)
        pairs = zip(report.classes, listed, strict=True)
        return "\n".join(f"{name} {value}" for name, value in pairs if not name.startswith("_"))

    def add(name: str, setting: DetectionSetting, score: DetectionSummary) -> None:
        table.add_row(
            name,
            threshold(setting),
            *(str(getattr(setting, key)) for key in TUNED_KEYS[1:]),
            str(score.hits),
            str(score.misses),
            f"{100 * score.miss_rate:.1f}%",
            f"{score.fa_per_hour:.2f}",
        )

    current = report.tuning.current
    add("current", current.setting, current.firmware)
    chosen = report.tuning.chosen
    if chosen is not None:
        if chosen.replayed is not None:  # the chosen parameters in the sweep's replay
            add("replay", chosen.setting, chosen.replayed)
        add("chosen", chosen.setting, chosen.firmware)
    console.print(table)
    if chosen is not None:
        from microspeech.data.streams import rate_interval

        # A rate measured from a few false accepts: say how far other audio may fall from it.
        false_accepts = chosen.firmware.false_accepts
        low, high = rate_interval(false_accepts, report.minutes / 60)
        repeats = chosen.firmware.repeats
        console.print(
            f"chosen: {false_accepts} false accepts in {report.minutes:g} min, "
            f"{chosen.firmware.fa_per_hour:.2f} FA/h (95% interval {low:.2f}-{high:.2f})"
            # Not false accepts, but an application acting on each would act twice.
            + (f"; {repeats} repeats (second detections of a keyword already found)" if repeats else ""),
            markup=False,
        )
    if chosen is None:
        # Per-class lists far over the budget are never kept as rows, so there may be none.
        # The firmware-checked rates when any (the table's), else the replay's: the replay skips
        # the resets after detections, so the two differ.
        checked = [entry.firmware.fa_per_hour for entry in report.tuning.verified]
        fewest = min(checked or [row.score.fa_per_hour for row in report.tuning.rows], default=None)
        closest = (
            f"the fewest{' checked with the firmware loop' if checked else ' in the sweep'}: {fewest:.2f}/h"
            if fewest is not None
            else "no per-class threshold list on the grid came within twice that, or one false accept over"
        )
        fail(
            f"no setting on the grid stays within {max_fa_per_hour:g} false accepts per hour "
            f"({closest}); nothing written",
            code=1,
        )
    # A score is never above 255: a per-class list with 255 silences that keyword on the device.
    switched_off = silenced_keywords(report.classes, chosen.setting.detection_threshold_list)
    silenced = (
        f"the pick within {max_fa_per_hour:g} false accepts per hour gives {', '.join(switched_off)} "
        "threshold 255, which never detects"
    )
    way_out = (
        "tune without --per-class, raise --max-fa-per-hour, or tune on a stream with more of its clips "
        "(--minutes)"
    )
    if switched_off and not write:
        console.print(f"warning: {silenced} ({way_out})", markup=False, highlight=False, soft_wrap=True)
    if write:
        if chosen.firmware.hits == 0:
            # Threshold 255 never fires, so it always "fits": written, the model detected nothing.
            fail(
                f"the pick within {max_fa_per_hour:g} false accepts per hour detects no keyword of the "
                f"stream (threshold {chosen.setting.detection_threshold}); nothing written: raise "
                "--max-fa-per-hour, or tune on a stream nearer the device's (--snr-db, --minutes)",
                code=1,
            )
        if switched_off:
            fail(f"{silenced}; nothing written: {way_out}", code=1)
        values = chosen.setting.to_dict()
        try:
            write_detection_params(report.model_source, values)
            # The manifest's train-time calibration no longer describes the .tflite: say what did.
            record_tuning(report)
        except ValueError as error:
            fail(str(error))
        written = [f"{key}={values[key]}" for key in PARAM_KEYS if values[key] is not None]
        had_list = current.setting.detection_threshold_list or report.ignored_threshold_list
        removed = values[THRESHOLD_LIST] is None and had_list
        console.print(
            f"Wrote {', '.join(written)} into {report.model_source}"
            + (f" (removed its {THRESHOLD_LIST}, which the device would use instead)" if removed else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _refuse_output_over_the_model(model: str, output: Path) -> None:
    """--output naming one of the model's own files: the JSON would replace the model (and
    --write then fail on it)."""
    from microspeech.models import resolve_model

    try:
        resolved = resolve_model(model)
    except ValueError:
        return  # tune names the model's own problem
    own = [path for path in (resolved.tflite_path, resolved.keras_path) if path is not None]
    if any(output.resolve() == Path(path).resolve() for path in own):
        fail(f"--output {output}: that is the model being tuned; name another file for the JSON")
    artifacts = resolved.artifacts
    if artifacts is not None:  # a training run's own files: its manifest, history, log, checkpoint
        run_files = [artifacts.manifest_path, artifacts.history_path, artifacts.train_log_path]
        inside = [artifacts.checkpoint_dir, artifacts.logs_dir, artifacts.eval_dir]
        target = output.resolve()
        if target in [path.resolve() for path in run_files] or any(
            folder.resolve() in target.parents for folder in inside
        ):
            fail(f"--output {output}: a file of the training run in {artifacts.directory}; name another")
