"""Profile MLTK's shipped tflite_micro_speech model and ours side by side.

    .venv/bin/python benchmarks/profile.py [MODEL.tflite | MODEL_DIR ...] [--runs N] [--clock-mhz F]

For each model: ops, MACs/OPs (MLTK's rules), the smallest TFLM arena (measured on this
64-bit host, and the 32-bit estimate), the same after `simplify_graph` (RESHAPEs removed,
outputs checked bit-identical on 200 random inputs, in LiteRT and in TFLM; the count of
random inputs whose scores the two runtimes round apart is printed too), host latency with
LiteRT and TFLM (median), and the estimated Cortex-M33 latency. Ratios are against MLTK's model.
"""

from __future__ import annotations

import argparse
import platform
import zipfile

import numpy as np
from rich.console import Console
from rich.table import Table

from bundles import machine_description, mltk_model_zip, resolve_models, run
from microspeech.tflite.graph import simplify_graph
from microspeech.tflite.profile import arena_report, estimate_mcu_latency, host_latency
from microspeech.tflite.runtime import TfliteRunner
from microspeech.tflite.summary import format_units, summarize_tflite


def _profile(name: str, tflite_bytes: bytes, runs: int, clock_mhz: float) -> dict:
    summary = summarize_tflite(tflite_bytes)
    arena = arena_report(tflite_bytes)
    simplified = simplify_graph(tflite_bytes)
    runner = TfliteRunner(tflite_bytes, "litert")
    inputs = np.random.default_rng(0).integers(
        -128, 128, (200, *runner.input_details.shape[1:]), dtype=np.int8
    )
    # simplify_graph is checked in each runtime against itself: LiteRT's and TFLM's kernels may
    # round a random input's scores 1-2 steps apart (never seen on real features: runtime_parity.py).
    identical = all(
        np.array_equal(
            TfliteRunner(simplified, backend).predict(inputs),
            TfliteRunner(tflite_bytes, backend).predict(inputs),
        )
        for backend in ("litert", "tflm")
    )
    across = TfliteRunner(tflite_bytes, "tflm").predict(inputs) != runner.predict(inputs)
    slim_arena = arena_report(simplified)
    return {
        "name": name,
        "ops": " ".join(layer.opcode for layer in summary.layers),
        "macs": summary.total_macs,
        "total_ops": summary.total_ops,
        "size": len(tflite_bytes),
        "arena": arena.min_arena_bytes,
        "arena32": arena.estimated_32bit_bytes,
        "slim_arena": slim_arena.min_arena_bytes,
        "slim_arena32": slim_arena.estimated_32bit_bytes,
        "slim_ops": summarize_tflite(simplified).total_ops,
        "identical": identical,
        "litert_tflm_rows_differing": int(np.any(across, axis=1).sum()),
        "litert_us": host_latency(tflite_bytes, runs=runs).median_ms * 1e3,
        "tflm_us": host_latency(tflite_bytes, runs=runs, backend="tflm").median_ms * 1e3,
        "slim_tflm_us": host_latency(simplified, runs=runs, backend="tflm").median_ms * 1e3,
        "m33_ms": estimate_mcu_latency(summary, clock_mhz).latency_ms,
        "slim_m33_ms": estimate_mcu_latency(summarize_tflite(simplified), clock_mhz).latency_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", help="our .tflite files, model folders or names")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--clock-mhz", type=float, default=78.0)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: at least 1")
    if not 0 < args.clock_mhz < 10_000:
        parser.error(f"--clock-mhz {args.clock_mhz:g}: expected above 0 and below 10000")
    # Before MLTK's model is profiled: a bad model stopped the run after it.
    tflites = [model.require_tflite() for model in resolve_models(args.models, "MODEL")]
    print(machine_description(), flush=True)
    console = Console()
    rows = []
    with zipfile.ZipFile(mltk_model_zip()) as archive:
        rows.append(
            _profile("MLTK shipped", archive.read("tflite_micro_speech.tflite"), args.runs, args.clock_mhz)
        )
    for tflite in tflites:
        rows.append(_profile(tflite.path.name, tflite.tflite_bytes, args.runs, args.clock_mhz))
    reference = rows[0]
    table = Table(
        title=f"{platform.machine()} {platform.processor() or ''}, {args.runs} timed runs",
        title_justify="left",
    )
    for column in ("model", "", "MLTK ratio"):
        table.add_column(column)
    for row in rows:
        simplified_ratio = reference["arena"] / row["slim_arena"]
        lines = [
            ("ops", row["ops"], ""),
            ("MACs / OPs", f"{format_units(row['macs'])} / {format_units(row['total_ops'])}", ""),
            (".tflite bytes", f"{row['size']:,}", f"{row['size'] / reference['size']:.3f}"),
            (
                "TFLM arena, host (64-bit)",
                f"{row['arena']:,} B",
                f"{reference['arena'] / row['arena']:.3f}x smaller",
            ),
            ("  32-bit estimate", f"~{row['arena32']:,} B", ""),
            (
                "  after simplify_graph",
                f"{row['slim_arena']:,} B (32-bit ~{row['slim_arena32']:,}), "
                f"OPs {format_units(row['slim_ops'])}, "
                f"outputs identical (in LiteRT and in TFLM): {row['identical']}; "
                f"LiteRT and TFLM apart on {row['litert_tflm_rows_differing']} of 200 random inputs",
                f"{simplified_ratio:.3f}x smaller",
            ),
            (
                "host LiteRT median",
                f"{row['litert_us']:.1f} us",
                f"{reference['litert_us'] / row['litert_us']:.2f}x",
            ),
            (
                "host TFLM median",
                f"{row['tflm_us']:.1f} us (simplified {row['slim_tflm_us']:.1f} us)",
                f"{reference['tflm_us'] / row['slim_tflm_us']:.2f}x (simplified)",
            ),
            (
                f"Cortex-M33 @ {args.clock_mhz:g} MHz (estimate)",
                f"~{row['m33_ms']:.2f} ms (simplified ~{row['slim_m33_ms']:.2f} ms)",
                "",
            ),
        ]
        table.add_row(f"[bold]{row['name']}[/]", "", "")
        for label, value, ratio in lines:
            table.add_row(label, value, ratio)
    console.print(table)


if __name__ == "__main__":
    run(main)
