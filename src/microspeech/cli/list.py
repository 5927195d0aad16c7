"""`microspeech list`: the registered models side by side, optionally within a RAM/flash budget."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from microspeech.cli.app import app, console, fail


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


@app.command("list")
def list_command(
    max_ram: str | None = typer.Option(
        None,
        "--max-ram",
        help="Keep models whose TFLM arena (measured on this 64-bit host, an upper bound for a 32-bit "
        "MCU) fits, e.g. 16k (k = 1024 bytes).",
    ),
    max_flash: str | None = typer.Option(
        None, "--max-flash", help="Keep models whose .tflite (weights and graph) fits, e.g. 64k."
    ),
    refresh: bool = typer.Option(False, "--refresh", help="Recompute the cached per-model numbers."),
) -> None:
    """Registered models: parameters, MACs, .tflite size, TFLM arena, Cortex-M33 estimate, MVP cycles,
    measured accuracy and streaming miss rate (append -test to a name for a dry run)."""
    from microspeech.evaluation.catalog import MEASURED_RESULTS, fit_budget, model_card, parse_bytes
    from microspeech.models import list_models
    from microspeech.models.registry import broken_spec_files

    limits: dict[str, int | None] = {}
    for option, text in (("--max-ram", max_ram), ("--max-flash", max_flash)):
        try:
            limits[option] = parse_bytes(text) if text is not None else None
        except ValueError as error:
            fail(f"{option}: {error}")
    ram, flash = limits["--max-ram"], limits["--max-flash"]
    try:
        cards, unmeasured = [], []
        with console.status("measuring the registered models (converted once, then cached)"):
            for name in list_models():
                try:
                    cards.append(model_card(name, use_cache=not refresh))
                except Exception as error:  # a user's model (build, conversion) hides only itself
                    text = (
                        str(error)
                        if isinstance(error, ValueError | RuntimeError)
                        else f"{type(error).__name__}: {error}"
                    )
                    unmeasured.append(text if repr(name) in text else f"{name}: {text}")
        fitting, closest = fit_budget(cards, max_ram=ram, max_flash=flash)
    except (ValueError, RuntimeError, KeyError) as error:
        fail(str(error))

    budget = ", ".join(
        f"{label} <= {value:,} B"
        for label, value in (("arena", ram), (".tflite", flash))
        if value is not None
    )
    shown = fitting
    if closest is not None:
        over = [
            f"arena {closest.arena_bytes:,} B" if ram is not None and closest.arena_bytes > ram else "",
            f".tflite {closest.tflite_bytes:,} B"
            if flash is not None and closest.tflite_bytes > flash
            else "",
        ]
        console.print(
            f"[yellow]No registered model fits {budget}.[/] The closest, {closest.name}, needs "
            + " and ".join(part for part in over if part)
            + ":"
        )
        shown = [closest]
    title = f"within {budget}" if budget and closest is None else None
    columns = (
        "model",
        "params",
        "MACs",
        ".tflite B",
        "arena B (32-bit est.)",
        "M33 ms (est.)",
        "MVP acc. cycles / ms",
        "clip acc.",
        "miss @5 FA/h",
    )
    rows = []
    for card in shown:
        mvp = (
            "-"
            if card.mvp_accelerator_cycles is None
            else f"{card.mvp_accelerator_cycles:,} / {card.mvp_ms:.2f}"
        )
        rows.append(
            (
                card.name + ("" if card.source == "trained" else " *"),
                f"{card.parameters:,}",
                f"{card.macs:,}",
                f"{card.tflite_bytes:,}",
                f"{card.arena_bytes:,} ({card.arena_32bit_bytes:,})",
                f"{card.m33_ms:.2f}",
                mvp,
                _percent(card.clip_accuracy),
                _percent(card.miss_rate_at_5_fa_per_hour),
            )
        )
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    natural = console.measure(table, options=console.options.update(max_width=10_000)).maximum
    if natural <= console.width:
        console.print(table)
    else:  # narrower than the table (a file, a CI log, a small window): one block per model, nothing cut
        if title:
            console.print(title)
        for row in rows:
            console.print(row[0], style="bold", markup=False)
            for column, value in zip(columns[1:], row[1:], strict=True):
                console.print(f"  {column}: {value}", markup=False)
    notes = [
        "* sizes from the untrained build (no .tflite trained as this model under the models folder); "
        "same graph."
        if any(card.source != "trained" for card in shown)
        else "",
        "arena: smallest TFLM arena that works, measured on this host. M33: Cortex-M33 @ 78 MHz, "
        "CMSIS-NN, cycle-model estimate. MVP: simulated accelerator cycles / total ms at 78 MHz with "
        "the CPU layers estimated (microspeech profile MODEL --accelerator mvp).",
    ]
    for card in shown:
        if card.mvp_fallbacks:
            notes.append(f"{card.name} on the MVP, CPU fallback: {'; '.join(card.mvp_fallbacks)}")
        measured = MEASURED_RESULTS.get(card.name)
        if measured is not None:
            notes.append(f"{card.name} accuracy / miss rate: {measured.source}, {measured.date}")
    for note in filter(None, notes):
        console.print(note, style="dim")
    broken = [str(error) for error in broken_spec_files().values()]
    for error in broken:
        console.print(f"[yellow]Not listed, its spec file failed to load:[/] {escape(error)}")
    # A name two files register fails with the second file's error, said once above.
    for error in (text for text in unmeasured if not any(file_error in text for file_error in broken)):
        console.print(
            f"[yellow]Not listed, its spec or trained .tflite does not load, build or convert for TFLM:[/] "
            f"{escape(error)}"
        )
