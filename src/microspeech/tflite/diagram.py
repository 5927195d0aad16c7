"""A picture of the model: one box per operator (or Keras layer), arrows labelled with tensors.

Boxes run top to bottom in execution order. A box shows the op, its configuration, its
MACs/OPs and its constant inputs (weights, biases) with their sizes; an arrow shows the
activation tensor it carries: shape, type and bytes. Arrows that skip boxes (branches,
residuals) bend around the right side. Drawn with matplotlib (Agg), saved as SVG and PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microspeech.files import write_files_atomic
from microspeech.tflite.summary import KerasSummary, ModelSummary, TensorInfo, format_units

BOX_WIDTH = 5.2
BOX_GAP = 0.9
LINE_HEIGHT = 0.24


@dataclass
class _Node:
    title: str
    lines: list[str]
    color: str


@dataclass
class _Edge:
    source: int
    target: int
    label: str


def _tensor_label(tensor: TensorInfo) -> str:
    return f"{'x'.join(str(d) for d in tensor.shape)} {tensor.dtype} ({tensor.size_bytes:,} B)"


_COLORS = {
    "CONV_2D": "#cfe2ff",
    "DEPTHWISE_CONV_2D": "#cfe2ff",
    "FULLY_CONNECTED": "#d1e7dd",
    "RESHAPE": "#fff3cd",
    "SOFTMAX": "#f8d7da",
    "AVERAGE_POOL_2D": "#e2d9f3",
    "MAX_POOL_2D": "#e2d9f3",
}


def _tflite_graph(summary: ModelSummary) -> tuple[list[_Node], list[_Edge]]:
    nodes = [_Node("Input", [_tensor_label(t) for t in summary.inputs], "#eeeeee")]
    producer: dict[int, int] = {t.index: 0 for t in summary.inputs}
    edges: list[_Edge] = []
    for layer in summary.layers:
        node_index = len(nodes)
        lines = [layer.config] if layer.config else []
        if layer.macs or layer.ops:
            lines.append(f"MACs {format_units(layer.macs)}  OPs {format_units(layer.ops)}")
        for tensor in layer.inputs:
            if tensor.is_constant:
                lines.append(f"const {_tensor_label(tensor)}")
            elif tensor.index in producer:
                edges.append(_Edge(producer[tensor.index], node_index, _tensor_label(tensor)))
        nodes.append(_Node(f"{layer.index}: {layer.opcode}", lines, _COLORS.get(layer.opcode, "#f0f0f0")))
        for tensor in layer.outputs:
            producer[tensor.index] = node_index
    output_index = len(nodes)
    nodes.append(_Node("Output", [_tensor_label(t) for t in summary.outputs], "#eeeeee"))
    for tensor in summary.outputs:
        if tensor.index in producer:
            edges.append(_Edge(producer[tensor.index], output_index, _tensor_label(tensor)))
    return nodes, edges


def _keras_graph(summary: KerasSummary) -> tuple[list[_Node], list[_Edge]]:
    nodes, edges = [], []
    position = {layer.name: i for i, layer in enumerate(summary.layers)}
    for i, layer in enumerate(summary.layers):
        lines = [f"output {layer.output_shape}"]
        if layer.params:
            lines.append(f"{layer.params:,} params ({layer.params * 4:,} B float32)")
        if layer.macs or layer.ops:
            lines.append(f"MACs {format_units(layer.macs)}  OPs {format_units(layer.ops)}")
        nodes.append(_Node(f"{layer.name} ({layer.kind})", lines, "#cfe2ff" if layer.params else "#f0f0f0"))
        # a sequential chain when the graph structure is unknown
        sources = [position[name] for name in layer.inbound if name in position] or ([i - 1] if i else [])
        for source in sources:
            feeding = summary.layers[source]
            label = f"{feeding.output_shape} float32 ({feeding.output_elements * 4:,} B)"
            edges.append(_Edge(source, i, label))
    return nodes, edges


def _draw(nodes: list[_Node], edges: list[_Edge], title: str, footer: str) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    heights = [LINE_HEIGHT * (len(node.lines) + 1) + 0.25 for node in nodes]
    tops, y = [], 0.0
    for height in heights:
        tops.append(y)
        y -= height + BOX_GAP
    total_height = -y + 0.2
    # room on the right for the labels, more when arrows bend around the side
    right = 4.0 if any(edge.target != edge.source + 1 for edge in edges) else 2.6
    figure = plt.figure(figsize=(BOX_WIDTH + right + 1.0, max(total_height, 3.0) * 0.9 + 1.0))
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(-1.0, BOX_WIDTH + right)
    axes.set_ylim(-total_height - 0.3, 1.0)
    axes.axis("off")
    axes.text(0, 0.55, title, fontsize=11, fontweight="bold", va="center")
    for node, top, height in zip(nodes, tops, heights, strict=True):
        axes.add_patch(
            FancyBboxPatch(
                (0, top - height),
                BOX_WIDTH,
                height,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor=node.color,
                edgecolor="#555555",
                linewidth=1.0,
            )
        )
        axes.text(0.15, top - 0.2, node.title, fontsize=9.5, fontweight="bold", va="top")
        for k, line in enumerate(node.lines):
            axes.text(0.15, top - 0.2 - LINE_HEIGHT * (k + 1), line, fontsize=8, va="top", family="monospace")
    for edge in edges:
        start_y = tops[edge.source] - heights[edge.source]
        end_y = tops[edge.target]
        if edge.target == edge.source + 1:
            axes.add_patch(
                FancyArrowPatch(
                    (BOX_WIDTH / 2, start_y),
                    (BOX_WIDTH / 2, end_y),
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color="#333333",
                )
            )
            axes.text(
                BOX_WIDTH / 2 + 0.12,
                (start_y + end_y) / 2,
                edge.label,
                fontsize=7.5,
                va="center",
                color="#1a4d8f",
            )
        else:
            start = (BOX_WIDTH, tops[edge.source] - heights[edge.source] / 2)
            end = (BOX_WIDTH, tops[edge.target] - heights[edge.target] / 2)
            axes.add_patch(
                FancyArrowPatch(
                    start,
                    end,
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color="#8a4b08",
                    connectionstyle="arc3,rad=-0.35",
                )
            )
            axes.text(
                BOX_WIDTH + 0.5,
                (start[1] + end[1]) / 2,
                edge.label,
                fontsize=7.5,
                va="center",
                color="#8a4b08",
            )
    axes.text(0, -total_height, footer, fontsize=8, va="bottom", color="#333333")
    return figure


def draw_model(
    summary: ModelSummary | KerasSummary, output_dir: str | Path, stem: str | None = None
) -> list[Path]:
    """Draw `summary` (from summarize_tflite or summarize_keras); write <stem>.svg and <stem>.png."""
    import matplotlib
    from matplotlib import pyplot as plt

    if not isinstance(summary, ModelSummary | KerasSummary):  # a path failed deep inside, on .layers
        raise TypeError(
            f"draw_model takes a summary, not {type(summary).__name__}: "
            "draw_model(summarize_tflite(path), folder) or draw_model(summarize_keras(path), folder)"
        )
    if stem is not None and (not stem.strip() or Path(stem).name != stem or stem in (".", "..")):
        raise ValueError(f"stem {stem!r}: a file name without folders (the files go in output_dir)")
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise ValueError(f"{output_dir}: is a file, not a folder")
    if isinstance(summary, ModelSummary):
        nodes, edges = _tflite_graph(summary)
        footer = (
            f"Total MACs {format_units(summary.total_macs)}, OPs {format_units(summary.total_ops)}; "
            f"weights {summary.weights_bytes:,} B; file {summary.file_size:,} B"
        )
        default_stem = Path(summary.path).stem if summary.path != "<bytes>" else "model"
    else:
        nodes, edges = _keras_graph(summary)
        footer = (
            f"Total MACs {format_units(summary.total_macs)}, OPs {format_units(summary.total_ops)}; "
            f"{summary.total_params:,} params"
        )
        default_stem = Path(summary.path).stem if summary.path != "<model>" else summary.name
    stem = stem or default_stem
    title = Path(summary.path).name if summary.path not in ("<bytes>", "<model>") else stem
    figure = _draw(nodes, edges, title, footer)
    images: dict[Path, bytes] = {}
    try:
        for extension in ("svg", "png"):
            buffer = io.BytesIO()
            # real <text> in the SVG (searchable, smaller) rather than glyph outlines
            with matplotlib.rc_context({"svg.fonttype": "none"}):
                figure.savefig(buffer, format=extension, dpi=150 if extension == "png" else None)
            images[Path(output_dir) / f"{stem}.{extension}"] = buffer.getvalue()
    finally:
        plt.close(figure)
    return write_files_atomic(images)  # both or neither: never a new SVG beside an old PNG
