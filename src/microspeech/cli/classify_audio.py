"""`microspeech classify_audio`: keyword detection on audio files or the microphone, as firmware does it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from microspeech.checks import OptionError, check_number
from microspeech.cli.app import app, console, fail, warn_if_unfinished
from microspeech.detection.params import PARAM_RANGES

OPTION_NAMES = {
    "average_window_duration_ms": "--window",
    "detection_threshold": "--threshold",
    "suppression_ms": "--suppression",
    "minimum_count": "--count",
    "volume_gain": "--volume",
    "latency_ms": "--latency",
}


def _format_scores(values) -> str:
    return " ".join(f"{int(v):3d}" for v in values)


@app.command("classify_audio")
def classify_audio(
    model: str = typer.Argument(..., help="A .tflite, an MLTK .mltk.zip archive, a model folder or name."),
    wav: list[Path] = typer.Option(None, "--wav", help="Audio file to classify (repeat for several)."),
    mic: bool = typer.Option(False, "--mic", help="Listen to the microphone (Ctrl+C stops)."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print every inference's scores and averages."
    ),
    average_window_duration_ms: int = typer.Option(
        None,
        "--window",
        "-w",
        help="Average the results of the last N ms (average_window_duration_ms).",
    ),
    detection_threshold: int = typer.Option(
        None,
        "--threshold",
        "-t",
        help="Detect when the top average is above this, 0-255 (detection_threshold).",
    ),
    suppression_ms: int = typer.Option(
        None, "--suppression", "-s", help="Ms before the same keyword may be detected again (suppression_ms)."
    ),
    minimum_count: int = typer.Option(
        None,
        "--count",
        "-c",
        help="Results needed in the window before deciding; 0: no averaging (minimum_count).",
    ),
    volume_gain: int = typer.Option(
        None,
        "--volume",
        "-u",
        help="Multiply the samples by this whole number as the part does, a product past the int16 "
        "limits wrapping around; 0 or 1: unchanged (volume_gain).",
    ),
    latency_ms: int = typer.Option(
        None, "--latency", "-l", help="Ms of audio between inferences (latency_ms)."
    ),
    backend: str = typer.Option(
        "litert",
        "--runtime",
        "--backend",
        help="Interpreter: litert, tflm (tflite-micro package) or silabs-tflm (Silicon Labs' TFLM "
        "build from the MLTK wheel).",
    ),
    no_reset: bool = typer.Option(
        False, "--no-reset", help="Keep the frontend state after a detection (firmware resets it)."
    ),
    device: str = typer.Option(None, "--device", help="With --mic: input device name or index."),
    seconds: float = typer.Option(None, "--seconds", help="With --mic: stop after this many seconds."),
) -> None:
    """Run an int8 keyword model on a stream: print each detection's time, label and score.

    Parameters embedded in the .tflite (MLTK's SL_PARAMSv1) are used unless overridden here.
    """
    from microspeech.audio import AudioError, decode_audio
    from microspeech.detection.classify import (
        KeywordSpotter,
        detection_params_with,
        whole_volume_gain,
        wrapped_samples,
    )
    from microspeech.evaluation.streaming import resolve_keyword_model

    if not wav and not mic:
        fail("give --wav FILE (one or more) or --mic")
    if wav and mic:  # the files ran to the end, then --mic failed (or listened on after them)
        fail("--wav and --mic: give one or the other")
    overrides = {
        "average_window_duration_ms": average_window_duration_ms,
        "detection_threshold": detection_threshold,
        "suppression_ms": suppression_ms,
        "minimum_count": minimum_count,
        "volume_gain": volume_gain,
        "latency_ms": latency_ms,
    }
    try:
        for key, value in overrides.items():
            if value is not None:
                low, high = PARAM_RANGES[key]
                check_number(value, f"{OPTION_NAMES[key]} ({key})", low=low, high=high)
        if seconds is not None:
            check_number(seconds, "--seconds", above=0.0, high=86_400.0)
        for option, value in (("--seconds", seconds), ("--device", device)):
            if value is not None and not mic:  # silently ignored before: a file has its own length
                raise OptionError(f"{option} applies to --mic only")
    except OptionError as error:
        fail(str(error))
    recordings = []
    for path in wav or []:  # read them all first: a bad file fails before any output
        try:
            recordings.append((path, decode_audio(path)))
        except (AudioError, OSError) as error:
            fail(f"--wav: {error}")
    from microspeech.tflite.runtime import check_backend

    try:  # the same words as tune's and evaluate's, the install hint included
        check_backend(backend, "--runtime")
    except ValueError as error:
        fail(str(error))
    try:
        warn_if_unfinished(model)  # an interrupted run's parameters are not calibrated
        keyword_model = resolve_keyword_model(model, overrides)
        params = keyword_model.detection
        if verbose:
            params = detection_params_with(params, {"verbose_model_output_logs": True})
    except (FileNotFoundError, ValueError) as error:
        fail(str(error))
    if params.minimum_count > params.results_in_window:
        # Nothing can ever be detected: an error for the options given, a warning for a model's own.
        given = [OPTION_NAMES[key] for key in ("minimum_count", "average_window_duration_ms", "latency_ms")
                 if overrides[key] is not None]
        problem = (
            f"minimum_count {params.minimum_count}: at most {params.results_in_window} results fit the "
            f"{params.average_window_duration_ms} ms window at one inference every {params.latency_ms} ms, "
            "so nothing would ever be detected"
        )
        if given:
            fail(f"{'/'.join(given)}: {problem}")
        from microspeech.cli.app import err_console

        err_console.print(f"warning: the model's parameters: {problem}", markup=False)
    try:
        # A --threshold dropped a stored per-class list when the model loaded (the device would
        # keep it; a threshold asked for here is meant to apply).
        spotter = KeywordSpotter(keyword_model, params, backend=backend, reset_after_detection=not no_reset)
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # RuntimeError: the runtime refused it
        fail(str(error))
    not_softmax = _not_a_softmax(keyword_model.tflite_bytes, spotter.runner.output_details)
    if not_softmax:  # the thresholds would compare meaningless numbers
        from microspeech.cli.app import err_console

        err_console.print(
            f"warning: {keyword_model.source}: {not_softmax}: the scores below are not probabilities",
            markup=False,
            soft_wrap=True,
        )
    settings = ", ".join(f"{key}={value}" for key, value in params.to_dict().items())
    if params.volume_gain != int(params.volume_gain):  # a fraction: what the part applies instead
        settings += f" (the firmware's volume gain: {whole_volume_gain(params.volume_gain)})"
    if keyword_model.class_thresholds is not None:
        listed = keyword_model.class_thresholds
        settings += f", detection_threshold_list={listed} (per class, used instead)"
    elif "detection_threshold_list" in keyword_model.parameters:  # dropped at load for --threshold
        settings += " (--threshold replaces the stored detection_threshold_list)"
    console.print(
        f"[bold]{escape(keyword_model.name)}[/] ({escape(keyword_model.source)})",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"classes: {', '.join(keyword_model.classes)}", markup=False, highlight=False, soft_wrap=True
    )
    console.print(f"settings: {settings}", markup=False, highlight=False, soft_wrap=True)

    def show(decisions, source: str = "") -> int:
        found = 0
        for decision in decisions:
            if params.verbose_model_output_logs:
                averages = "-" if decision.averages is None else _format_scores(decision.averages)
                scores = _format_scores(decision.scores_u8)
                line = f"[{decision.time_ms:8d} ms] scores {scores} | averages {averages}"
                console.print(line, highlight=False, soft_wrap=True)
            if decision.is_detection:
                found += 1
                console.print(
                    f"{escape(source)}{decision.time_ms / 1000:9.2f} s  detected "
                    f"[bold green]{escape(decision.label)}[/] score={decision.score}",
                    highlight=False,
                    soft_wrap=True,
                )
        return found

    for path, decoded in recordings:
        spotter.reset()
        audio = decoded.samples
        # Say what reading changed, so a 44.1 kHz stereo recording is not mistaken for what the device hears.
        note = "".join(f", {conversion}" for conversion in decoded.conversions)
        line = f"[dim]{escape(str(path))}: {len(audio) / 16000:.2f} s{escape(note)}[/]"
        console.print(line, highlight=False, soft_wrap=True)
        wrapped = wrapped_samples(audio, params.volume_gain)
        if wrapped:  # what the part hears: loud passages turned into full-scale clicks
            console.print(
                f"  note: {wrapped:,} samples ({_share(wrapped, len(audio))}) pass the int16 limits at "
                f"volume_gain {whole_volume_gain(params.volume_gain)} and wrap around, as on the part "
                "(MLTK's firmware keeps the product's low 16 bits); a recording this loud wants --volume 1",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        try:
            found = show(spotter.process(audio), f"{path.name}: " if len(wav) > 1 else "")
        except RuntimeError as error:  # an op the interpreter prepared but could not run
            fail(str(error))
        if not found:
            console.print(f"{path.name}: no detection", markup=False, highlight=False, soft_wrap=True)
            audio_ms = len(audio) * 1000 // 16000
            suppressed_ms = params.suppression_ms + params.average_window_duration_ms
            if audio_ms < params.latency_ms:  # not one inference ran: the suppression is not why
                console.print(
                    f"  note: {audio_ms} ms of audio is shorter than one inference step ({params.latency_ms} "
                    "ms), so nothing was scored; pad a short recording with silence",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            elif params.suppression_ms and audio_ms <= suppressed_ms:
                # A one-second clip of the first class, the obvious first test, shows nothing.
                console.print(
                    f"  note: as the firmware, the detector starts as if {keyword_model.classes[0]!r} had "
                    f"been detected at 0 ms, so it reports no {keyword_model.classes[0]!r} in the first "
                    f"{params.suppression_ms} ms (--suppression); pad a short recording with silence",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
    if mic:
        from microspeech.detection.mic import MicrophoneError, input_device, listen

        spotter.reset()
        chosen = int(device) if device and device.isdigit() else device
        try:
            input_device(chosen)  # the package and the device first: "Listening..." only when it can
            console.print("Listening... (Ctrl+C to stop)")
            listen(spotter, show, device=chosen, seconds=seconds)
        except MicrophoneError as error:
            fail(str(error))
        except KeyboardInterrupt:
            from microspeech import stopping

            console.print("stopped")
            if stopping.received() == "SIGTERM":  # Ctrl-C is how one stops listening; kill is not
                raise typer.Exit(stopping.exit_status()) from None


def _share(part: int, whole: int) -> str:
    """A share as a percentage: one decimal from 1% on, two significant digits below (never
    "0.00%" for a count above 0, nor "1e+02%")."""
    share = 100 * part / whole
    return f"{share:.1f}%" if share >= 1 else f"{share:.2g}%"


def _not_a_softmax(tflite_bytes: bytes, output) -> str:  # noqa: ANN001 (TensorDetails)
    """Why the model's output is not a softmax's ("" when it is one)."""
    if str(output.dtype) == "int8":
        # TFLite quantizes a softmax's int8 output at 1/256, -128 (MLTK's 0-255 scores).
        if abs(output.scale - 1 / 256) > 1e-9 or output.zero_point != -128:
            quantized = f"scale {output.scale:g}, zero point {output.zero_point}"
            return f"its int8 output ({quantized}) is not a softmax's"
        return ""
    from microspeech.tflite.summary import summarize_tflite

    try:
        last = summarize_tflite(tflite_bytes).output_opcode
    except ValueError:  # a graph the runtime took but the summary cannot read: nothing to say
        return ""
    if last is None or last in ("SOFTMAX", "LOGISTIC"):  # a sigmoid's scores are probabilities too
        return ""
    return f"its {output.dtype} output comes from {last}, not a SOFTMAX"
