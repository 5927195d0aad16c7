"""`microspeech profile`: TFLM arena, per-layer cost, host latency and an MCU latency estimate;
with `--accelerator mvp`, per-layer cycles on Silicon Labs' MVP simulator."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from microspeech.cli.app import app, compact_table, console, fail, model_file, path_option, shown_as

DEFAULT_RUNS = 500  # host inferences timed for the median latency


@app.command("profile")
def profile_command(
    model: str = typer.Argument(..., help="A .tflite file or a trained model's name."),
    clock_mhz: float = typer.Option(
        78.0, "--clock-mhz", help="Cortex-M33 core clock for the latency estimate."
    ),
    runs: int | None = typer.Option(
        None, "--runs", help=f"Host inferences to time (the median is reported; default {DEFAULT_RUNS})."
    ),
    json_path: Path | None = typer.Option(
        None, "--json", parser=path_option, help="Also write the full report to this JSON file."
    ),
    accelerator: str = typer.Option(
        "none",
        "--accelerator",
        help="none: TFLM on the CPU (arena, latency); mvp: cycles on Silicon Labs' MVP simulator "
        "(needs `pip install --no-deps silabs-mltk==0.20.0`).",
    ),
) -> None:
    """Smallest TFLM arena, per-layer MACs/OPs, host latency (LiteRT) and estimated Cortex-M33 latency."""
    from microspeech.checks import OptionError, check_int, check_number, check_output_file
    from microspeech.models import ModelResolutionError
    from microspeech.tflite.profile import CYCLE_MODEL, profile_model
    from microspeech.tflite.summary import format_units

    if accelerator.lower() not in ("none", "mvp"):
        fail(f"--accelerator must be none or mvp, got {accelerator!r}")
    if accelerator.lower() == "mvp" and runs is not None:
        fail("--runs times inferences on this host; --accelerator mvp counts simulated cycles and takes none")
    runs = DEFAULT_RUNS if runs is None else runs
    try:
        check_number(clock_mhz, "--clock-mhz", low=0.001, high=10_000.0)  # 1 kHz up: 1e-300 printed 1e+303 ms
        check_int(runs, "--runs", low=10, high=1_000_000)
        if json_path is not None:
            check_output_file(json_path, "--json")
    except OptionError as error:
        fail(str(error))
    if accelerator.lower() == "mvp":
        from microspeech.tflite.mvp import INSTALL_HINT, mvp_available

        # The library is looked for before the model is read: one line either way.
        if not mvp_available():
            fail(f"--accelerator mvp needs Silicon Labs' MVP simulator from the MLTK wheel ({INSTALL_HINT})")
    try:
        path = model_file(model, "tflite")
    except (ModelResolutionError, ValueError, OSError) as error:
        fail(str(error))
    if accelerator.lower() == "mvp":
        _profile_mvp(path, clock_mhz, json_path, shown_as(model, path))
        return
    try:
        with console.status(f"profiling {path.name} (arena search, {runs} timed runs)"):
            report = profile_model(path, clock_mhz=clock_mhz, runs=runs)
        report.path = report.summary.path = shown_as(model, path)
    except (ModelResolutionError, ValueError, RuntimeError, OSError) as error:
        # The profile reads the file's bytes, so their errors name "<bytes>": named by the file.
        message = str(error).replace("<bytes>", shown_as(model, path))
        fail(message if shown_as(model, path) in message else f"{shown_as(model, path)}: {message}")

    table = Table(title=report.path, title_justify="left")
    for column in ("Index", "OpCode", "MACs", "OPs", f"Est. ms @ {clock_mhz:g} MHz"):
        table.add_column(column, justify="left" if column in ("Index", "OpCode") else "right")
    for layer, ms in zip(report.summary.layers, report.mcu.per_layer_ms, strict=True):
        table.add_row(
            str(layer.index),
            layer.opcode.lower(),
            format_units(layer.macs),
            format_units(layer.ops),
            f"{ms:.3f}",
        )
    console.print(table)
    arena, host, mcu, slim = report.arena, report.host, report.mcu, report.without_reshape
    summary = report.summary
    lines = [
        f"Total MACs: {format_units(summary.total_macs)}   Total OPs: {format_units(summary.total_ops)}"
        + (f" ([yellow]{summary.uncounted_note}[/]; the latency estimate leaves them out too)"
           if summary.uncounted_note else ""),
        f"TFLM arena, smallest that works (measured, 64-bit host): [bold]{arena.min_arena_bytes:,} B[/] "
        f"(tensors {arena.head_bytes:,} B + bookkeeping {arena.tail_bytes:,} B)",
        f"TFLM arena on a 32-bit MCU ([yellow]estimate[/], pointer-bearing structs rescaled): "
        f"~{arena.estimated_32bit_bytes:,} B",
        f"Host latency (LiteRT, XNNPACK off, median of {host.runs}): {host.median_ms * 1e3:.1f} us "
        f"(p10 {host.p10_ms * 1e3:.1f}, p90 {host.p90_ms * 1e3:.1f})"
        + (
            f"; TFLM reference kernels on this host: {report.host_tflm.median_ms * 1e3:.1f} us"
            if report.host_tflm is not None
            else ""
        ),
        f"Cortex-M33 latency at {clock_mhz:g} MHz, CMSIS-NN, no accelerator ([yellow]estimate[/], not a "
        f"measurement): ~{mcu.latency_ms:.2f} ms = {mcu.cycles:,} cycles at "
        f"{CYCLE_MODEL['cycles_per_mac']} cycles/MAC, {CYCLE_MODEL['cycles_per_op_elementwise']} per "
        f"elementwise OP, {CYCLE_MODEL['cycles_per_layer']:,.0f} per layer",
    ]
    weights = {t.dtype for layer in report.summary.layers for t in layer.inputs if t.is_constant}
    if "float32" in weights:  # the cycle model is CMSIS-NN's int8 kernels
        lines.append(
            "[yellow]The model computes in float32[/]: the Cortex-M33 estimate above assumes int8 "
            "CMSIS-NN kernels; float kernels on an M33 take several times as long. Convert with "
            "`microspeech train` (full int8) for a part."
        )
    if slim:
        lines.append(
            "Without the redundant RESHAPEs (tflite.graph.simplify_graph, bit-identical outputs): "
            f"arena {slim.min_arena_bytes:,} B (32-bit ~{slim.estimated_32bit_bytes:,} B), "
            f"OPs {format_units(slim.total_ops)}, file {slim.file_size:,} B, "
            f"est. {slim.mcu_latency_ms:.2f} ms"
        )
    for line in lines:
        console.print(line)
    if json_path is not None:
        from microspeech.files import write_bytes_atomic

        write_bytes_atomic(json_path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
        console.print(f"wrote {json_path}", markup=False)


def _profile_mvp(path: Path, clock_mhz: float, json_path: Path | None, shown: str) -> None:
    from microspeech.tflite.mvp import MvpError, profile_mvp
    from microspeech.tflite.summary import format_units

    try:
        with console.status(f"simulating {path.name} on the MVP"):
            report = profile_mvp(path, clock_mhz=clock_mhz)
    except (MvpError, ValueError) as error:
        message = str(error).replace("<bytes>", shown)
        fail(message if shown in message else f"{shown}: {message}")
    report.path = shown
    table = compact_table(f"{shown} on the MVP (EFR32xG24) simulator", title_justify="left")
    columns = (
        "Index",
        "OpCode",
        "MACs",
        "Acc.\ncycles",
        "CPU cycles\n(est.)",
        f"ms @\n{clock_mhz:g} MHz",
        "Runs on",
    )
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("Index", "OpCode", "Runs on") else "right", no_wrap=True
        )
    for layer in report.layers:
        table.add_row(
            str(layer.index),
            layer.opcode.lower(),
            format_units(layer.macs),
            f"{layer.accelerator_cycles:,}",
            f"{layer.cpu_cycles_estimate:,}",
            f"{layer.cycles / (clock_mhz * 1e3):.3f}",
            # A fallback's reason is printed in full below the table.
            "CPU fallback" if layer.fallback_reason and not layer.on_accelerator else layer.where,
        )
    console.print(table)
    for layer in report.fallbacks:
        console.print(
            f"[yellow]layer {layer.index} {layer.opcode}[/] runs on the CPU: the MVP kernel's limit "
            f"{layer.fallback_reason} (the simulator still reports {layer.accelerator_cycles:,} accelerator "
            "cycles for it, as MLTK's profiler does; its time here is the larger of those and the CPU "
            "estimate)"
        )
    if report.accelerator_cycles == 0:
        why = "the MVP kernels take int8 layers only" if report.layers else "the model has no layers"
        console.print(
            f"[yellow]No layer of this model runs on the MVP[/] (the simulator reported 0 accelerator "
            f"cycles; {why})"
        )
    console.print(
        f"Accelerator cycles (simulated, measured): [bold]{report.accelerator_cycles:,}[/] = "
        f"{report.accelerator_cycles / (clock_mhz * 1e3):.3f} ms at {clock_mhz:g} MHz"
    )
    console.print(
        f"Total per inference: ~{report.total_cycles:,} cycles = [bold]~{report.latency_ms:.2f} ms[/] at "
        f"{clock_mhz:g} MHz (each layer max(accelerator, CPU); CPU cycles are a [yellow]Cortex-M33 "
        "estimate[/] from microspeech's cycle model, not MLTK's downloaded estimators)"
    )
    if json_path is not None:
        from microspeech.files import write_bytes_atomic

        write_bytes_atomic(json_path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
        console.print(f"wrote {json_path}", markup=False)
