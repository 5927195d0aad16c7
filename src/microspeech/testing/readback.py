"""Read exported artifacts back, to check them: the bytes of a generated C array, the seed's
plain-text layer table of a summary."""

from __future__ import annotations

import re

from microspeech.tflite.summary import ModelSummary, format_units

__all__ = ["layer_table_text", "parse_c_array"]


def parse_c_array(source_text: str) -> bytes:
    """The bytes of the first `{ 0x.., ... }` array in a generated .cc (to check an export)."""
    body = source_text[source_text.index("{") + 1 : source_text.index("};")]
    return bytes(int(token, 16) for token in re.findall(r"0x([0-9a-fA-F]{2})", body))


def layer_table_text(summary: ModelSummary) -> str:
    """The seed's plain-text layer table (Index, OpCode, Input(s), Output(s), Config) and totals."""
    header = ("Index", "OpCode", "Input(s)", "Output(s)", "Config")
    rows = [layer.table_cells() for layer in summary.layers]
    widths = [
        max([len(h)] + [len(line) for row in rows for line in row[i].split("\n")])
        for i, h in enumerate(header)
    ]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [rule, line(header), rule]
    for row in rows:
        parts = [cell.split("\n") for cell in row]
        for k in range(max(len(p) for p in parts)):
            out.append(line(tuple(p[k] if k < len(p) else "" for p in parts)))
    out.append(rule)
    out.append(f"Total MACs: {format_units(summary.total_macs)}")
    out.append(f"Total OPs: {format_units(summary.total_ops)}")
    return "\n".join(out)
