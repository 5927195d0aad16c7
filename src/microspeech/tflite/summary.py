"""What a model is: its layers, tensor shapes, MACs/OPs (MLTK's counting rules), parameters.

The counting follows Silicon Labs MLTK (`mltk/core/model/metrics/layers/*.py`) so totals
compare with MLTK's `summarize` output: convolution MACs = kh*kw*cin*ho*wo*cout and OPs =
2*MACs plus one add per output when there is a bias; depthwise likewise per channel;
fully connected MACs = inputs*outputs, OPs = 2*MACs plus the bias adds; a RESHAPE that
copies costs one OP per element; softmax two per element (exp, divide); ReLU/activation
two per element (min, max); average pool (kh*kw + 1) per output, max pool kh*kw per
output; add and mul one per element; pad six per output; quantize four, dequantize two per
element. Counts are per inference (batch dimension excluded). One deliberate difference:
FULLY_CONNECTED takes its input width from the weights, so a model whose FC reads a 4-D
tensor directly (RESHAPE removed, see `microspeech.tflite.graph`) is still counted right.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from microspeech.tflite.flatbuffer import builtin_op_names, load_bytes, tensor_type_names, unpack_model

_TYPE_BYTES = {
    "float32": 4,
    "float16": 2,
    "int32": 4,
    "uint8": 1,
    "int64": 8,
    "bool": 1,
    "int16": 2,
    "int8": 1,
    "float64": 8,
    "uint32": 4,
    "uint16": 2,
    "int4": 1,
}
_ACTIVATIONS = {
    value: name.lower()
    for name, value in vars(schema.ActivationFunctionType).items()
    if not name.startswith("_")
}
_PADDINGS = {value: name.lower() for name, value in vars(schema.Padding).items() if not name.startswith("_")}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    is_constant: bool
    scale: float | None = None
    zero_point: int | None = None

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def size_bytes(self) -> int:
        return self.elements * _TYPE_BYTES.get(self.dtype, 4)

    def shape_str(self, include_batch: bool = False) -> str:
        """'49x40x1 (int8)': MLTK drops the leading dimension of tensors with rank > 1."""
        dims = self.shape if include_batch or len(self.shape) <= 1 else self.shape[1:]
        return f"{'x'.join(str(d) for d in dims) or '1'} ({self.dtype})"


@dataclass(frozen=True)
class LayerInfo:
    """One operator with its tensors, options and cost."""

    index: int
    opcode: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    config: str
    macs: int
    ops: int
    options: dict[str, Any] = field(default_factory=dict)

    def table_cells(self) -> tuple[str, str, str, str, str]:
        """The seed's columns: Index, OpCode, Input(s), Output(s), Config."""
        return (
            str(self.index),
            self.opcode.lower(),
            "\n".join(t.shape_str() for t in self.inputs),
            "\n".join(t.shape_str() for t in self.outputs),
            self.config,
        )


# Operators that hand on their input's values converted or reshaped, not computed anew.
PASS_THROUGH_OPS = frozenset({"DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE", "CAST", "EXPAND_DIMS"})


@dataclass
class ModelSummary:
    """A .tflite: layers, totals, embedded parameters, file size."""

    path: str
    layers: list[LayerInfo]
    tensors: list[TensorInfo]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    parameters: dict[str, Any]
    file_size: int
    # Subgraphs besides the first (a WHILE or IF body: recurrent layers): not in the layers or totals.
    other_subgraphs: int = 0

    @property
    def uncounted_note(self) -> str:
        """What the totals leave out, in words ("" when nothing)."""
        if not self.other_subgraphs:
            return ""
        return (
            f"not counted: {self.other_subgraphs} more subgraph(s) (control flow such as a recurrent "
            "layer's WHILE body), whose operators run once per loop step"
        )

    @property
    def output_opcode(self) -> str | None:
        """The operator whose values the first output holds, looking back through those that only
        convert or reshape them (a SOFTMAX then DEQUANTIZE is a softmax's output); None when no
        operator writes it."""
        tensor = self.outputs[0] if self.outputs else None
        for _ in range(len(self.layers)):  # each step moves to an earlier operator
            layer = next((layer for layer in self.layers if any(t is tensor for t in layer.outputs)), None)
            if layer is None or layer.opcode not in PASS_THROUGH_OPS or not layer.inputs:
                return None if layer is None else layer.opcode
            tensor = layer.inputs[0]
        return None

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_ops(self) -> int:
        return sum(layer.ops for layer in self.layers)

    @property
    def weights_bytes(self) -> int:
        return sum(t.size_bytes for t in self.tensors if t.is_constant)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "file_size": self.file_size,
            "total_macs": self.total_macs,
            "total_ops": self.total_ops,
            "layers": [
                {
                    "index": layer.index,
                    "opcode": layer.opcode,
                    "inputs": [asdict(t) for t in layer.inputs],
                    "outputs": [asdict(t) for t in layer.outputs],
                    "config": layer.config,
                    "macs": layer.macs,
                    "ops": layer.ops,
                }
                for layer in self.layers
            ],
            "parameters": {k: v.hex() if isinstance(v, bytes) else v for k, v in self.parameters.items()},
        }


def format_units(value: float, precision: int = 3, space: bool = True) -> str:
    """MLTK's number style: 336000 -> '336.000 k', 0 -> '0'."""
    if value == 0:
        return "0"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{precision}f}{' ' if space else ''}{unit}"
    return (
        f"{value:.{precision}f}" if isinstance(value, float) and not float(value).is_integer() else str(value)
    )


def _tensor_infos(model: schema.ModelT, subgraph: schema.SubGraphT) -> list[TensorInfo]:
    type_names = tensor_type_names()
    infos = []
    for index, tensor in enumerate(subgraph.tensors or []):
        buffer = (
            model.buffers[tensor.buffer] if model.buffers and tensor.buffer < len(model.buffers) else None
        )
        constant = buffer is not None and buffer.data is not None and len(buffer.data) > 0
        quant = tensor.quantization
        scale = zero_point = None
        if quant is not None and quant.scale is not None and len(quant.scale) > 0:
            scale = float(quant.scale[0])
            zero_point = (
                int(quant.zeroPoint[0]) if quant.zeroPoint is not None and len(quant.zeroPoint) else 0
            )
        name = tensor.name.decode("utf-8") if isinstance(tensor.name, bytes) else str(tensor.name or "")
        infos.append(
            TensorInfo(
                index=index,
                name=name,
                shape=tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ())),
                dtype=type_names.get(tensor.type, str(tensor.type)),
                is_constant=constant,
                scale=scale,
                zero_point=zero_point,
            )
        )
    return infos


def _per_inference(shape: tuple[int, ...]) -> int:
    """Elements excluding the batch dimension (rank > 1)."""
    dims = shape[1:] if len(shape) > 1 else shape
    return int(np.prod(dims)) if dims else 1


def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(options).items()}


def _config(opcode: str, options: dict[str, Any], outputs: tuple[TensorInfo, ...]) -> str:
    activation = _ACTIVATIONS.get(options.get("fusedActivationFunction", 0), "none")
    if opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
        padding = _PADDINGS.get(options.get("padding", 0))
        text = f"Padding:{padding} stride:{options.get('strideW')}x{options.get('strideH')}"
        if opcode == "DEPTHWISE_CONV_2D":
            text += f" multiplier:{options.get('depthMultiplier')}"
        return text if opcode == "TRANSPOSE_CONV" else f"{text} activation:{activation}"
    if opcode in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return (
            f"Padding:{_PADDINGS.get(options.get('padding', 0))} stride:{options.get('strideW')}x"
            f"{options.get('strideH')} filter:{options.get('filterWidth')}x{options.get('filterHeight')} "
            f"activation:{activation}"
        )
    if opcode in ("FULLY_CONNECTED", "ADD", "SUB", "MUL", "CONCATENATION"):
        return f"Activation:{activation}"
    if opcode == "SOFTMAX":
        return f"beta:{options.get('beta', 1.0):g}"
    if opcode == "RESHAPE":
        return f"new shape:{'x'.join(str(d) for d in outputs[0].shape)}" if outputs else ""
    return ", ".join(f"{k}:{v}" for k, v in options.items()) if options else ""


def _cost(
    opcode: str, options: dict[str, Any], ins: tuple[TensorInfo, ...], outs: tuple[TensorInfo, ...]
) -> tuple[int, int]:
    """(MACs, OPs) of one operator, MLTK's rules (module docstring)."""
    out = outs[0] if outs else None
    out_elems = _per_inference(out.shape) if out is not None else 0
    has_bias = len(ins) > 2 and ins[2] is not None
    if opcode == "CONV_2D":
        cout, kh, kw, cin = ins[1].shape
        macs = kh * kw * cin * out_elems
        return macs, 2 * macs + (out_elems if has_bias else 0)
    if opcode == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = ins[1].shape
        macs = kh * kw * out_elems
        return macs, 2 * macs + (out_elems if has_bias else 0)
    if opcode == "TRANSPOSE_CONV":
        # Each input element meets kh x kw x cout weights (inputs: output shape, weights, data);
        # per output element the count depends on the stride, so it was 4x too high at stride 2.
        cout, kh, kw, cin = ins[1].shape
        macs = kh * kw * cout * _per_inference(ins[2].shape)
        return macs, 2 * macs + (out_elems if len(ins) > 3 and ins[3] is not None else 0)
    if opcode == "FULLY_CONNECTED":
        units, depth = ins[1].shape[0], ins[1].shape[-1]
        # TFLite flattens the input to rows of `depth` values (1 row for the usual (1, depth) input)
        rows = max(_per_inference(ins[0].shape) // max(depth, 1), 1)
        macs = units * depth * rows
        # MLTK counts the bias adds over the whole output tensor
        bias_adds = (int(np.prod(out.shape)) if out is not None and out.shape else 0) if has_bias else 0
        return macs, 2 * macs + bias_adds
    if opcode == "RESHAPE":
        return 0, _per_inference(ins[0].shape) if ins[0].index != out.index else 0  # type: ignore[union-attr]
    if opcode == "SOFTMAX":
        return 0, 2 * _per_inference(ins[0].shape)
    if opcode in (
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RELU_0_TO_1",
        "LEAKY_RELU",
        "HARD_SWISH",
        "LOGISTIC",
        "TANH",
    ):
        return 0, 2 * out_elems
    if opcode == "AVERAGE_POOL_2D":
        return 0, out_elems * (options.get("filterHeight", 1) * options.get("filterWidth", 1) + 1)
    if opcode == "MAX_POOL_2D":
        return 0, out_elems * options.get("filterHeight", 1) * options.get("filterWidth", 1)
    if opcode == "ADD":
        return 0, _per_inference(ins[0].shape)
    if opcode == "MUL":
        return 0, out_elems
    if opcode in ("PAD", "PADV2"):
        return 0, 6 * out_elems
    if opcode == "QUANTIZE":
        return 0, 4 * _per_inference(ins[0].shape)
    if opcode == "DEQUANTIZE":
        return 0, 2 * _per_inference(ins[0].shape)
    return 0, 0


def summarize_tflite(path_or_bytes: str | Path | bytes) -> ModelSummary:
    """Layers, tensors, MACs/OPs and embedded parameters of a .tflite (first subgraph)."""
    from microspeech.tflite.metadata import read_parameters

    tflite_bytes = load_bytes(path_or_bytes)
    model = unpack_model(tflite_bytes)
    if not model.subgraphs:
        raise ValueError(f"{_source(path_or_bytes)}: the model has no subgraph")
    subgraph = model.subgraphs[0]
    tensors = _tensor_infos(model, subgraph)
    op_names = builtin_op_names()
    layers = []
    for index, op in enumerate(subgraph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        opcode = op_names.get(builtin, f"OP_{builtin}")
        if opcode == "CUSTOM" and code.customCode:
            custom = code.customCode
            opcode = f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
        ins = tuple(tensors[i] for i in (op.inputs if op.inputs is not None else ()) if i >= 0)
        outs = tuple(tensors[i] for i in (op.outputs if op.outputs is not None else ()) if i >= 0)
        options = _options_dict(op.builtinOptions)
        try:
            macs, ops = _cost(opcode, options, ins, outs)
        except (IndexError, ValueError, TypeError):  # a damaged file whose offsets all hold
            shapes = ", ".join(str(tensor.shape) for tensor in ins)
            inputs = f"inputs of shapes {shapes}" if ins else "no inputs"
            raise ValueError(
                f"{_source(path_or_bytes)}: not a valid .tflite: operator {index} ({opcode}) has {inputs}, "
                f"which no {opcode} has"
            ) from None
        layers.append(LayerInfo(index, opcode, ins, outs, _config(opcode, options, outs), macs, ops, options))
    return ModelSummary(
        path=_source(path_or_bytes),
        layers=layers,
        tensors=tensors,
        inputs=[tensors[i] for i in subgraph.inputs],
        outputs=[tensors[i] for i in subgraph.outputs],
        parameters=read_parameters(tflite_bytes),
        file_size=len(tflite_bytes),
        other_subgraphs=len(model.subgraphs) - 1,
    )


def _source(path_or_bytes: str | Path | bytes) -> str:
    return str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else "<bytes>"


@dataclass(frozen=True)
class KerasLayerInfo:
    name: str
    kind: str
    output_shape: str
    params: int
    macs: int
    ops: int
    inbound: tuple[str, ...] = ()

    @property
    def output_elements(self) -> int:
        dims = [int(d) for d in self.output_shape.split("x") if d.isdigit()]
        return int(np.prod(dims)) if dims else 0


@dataclass
class KerasSummary:
    """A float Keras model: layers with parameter counts and MLTK's MACs/OPs."""

    path: str
    name: str
    layers: list[KerasLayerInfo]
    total_params: int
    trainable_params: int
    file_size: int | None

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_ops(self) -> int:
        return sum(layer.ops for layer in self.layers)


def _shape_of(value: Any) -> tuple:
    shape = getattr(value, "shape", value)
    return tuple(shape) if shape is not None else ()


def _keras_cost(layer: Any) -> tuple[int, int]:
    """(MACs, OPs) of one Keras layer, MLTK's rules for its Keras layers."""
    kind = type(layer).__name__
    try:
        in_shape = _shape_of(layer.input)
        out_shape = _shape_of(layer.output)
    except (AttributeError, ValueError):
        return 0, 0
    out_elems = int(np.prod([d for d in out_shape[1:] if d is not None])) if len(out_shape) > 1 else 0
    bias = bool(getattr(layer, "use_bias", False))
    if kind == "Conv2D":
        kh, kw = layer.kernel_size
        cin = in_shape[-1] if layer.data_format == "channels_last" else in_shape[1]
        macs = kh * kw * cin * out_elems
        return macs, 2 * macs + (out_elems if bias else 0)
    if kind == "DepthwiseConv2D":
        kh, kw = layer.kernel_size
        macs = kh * kw * out_elems
        return macs, 2 * macs + (out_elems if bias else 0)
    if kind == "Dense":  # on every row of a (..., rows, features) input, as TFLite computes it
        rows = int(np.prod([d for d in in_shape[1:-1] if d is not None]))
        macs = rows * in_shape[-1] * out_shape[-1]
        return macs, 2 * macs + (out_elems if bias else 0)
    if kind == "Conv1D":
        (k,) = layer.kernel_size
        macs = k * in_shape[-1] * out_elems
        return macs, 2 * macs + (out_elems if bias else 0)
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        # A depthwise pass (kernel x every input channel x multiplier at each output position),
        # then a pointwise one; the same count as the two TFLite layers it converts to.
        kernel = int(np.prod(layer.kernel_size))
        positions = int(np.prod([d for d in out_shape[1:-1] if d is not None]))
        depthwise = positions * in_shape[-1] * layer.depth_multiplier
        macs = kernel * depthwise + depthwise * out_shape[-1]
        return macs, 2 * macs + (out_elems if bias else 0)
    if kind == "Conv2DTranspose":
        kernel = int(np.prod(layer.kernel_size))
        macs = kernel * out_shape[-1] * int(np.prod([d for d in in_shape[1:] if d is not None]))
        return macs, 2 * macs + (out_elems if bias else 0)
    if kind in ("LSTM", "GRU", "SimpleRNN"):
        # Per step, each gate multiplies the input and the state: 4 gates (LSTM), 3 (GRU), 1.
        gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[kind]
        steps, features, units = in_shape[1] or 1, in_shape[-1], layer.units
        macs = steps * gates * units * (features + units)
        return macs, 2 * macs
    if kind in ("ReLU", "Activation"):
        return 0, 2 * out_elems
    if kind == "Softmax":
        return 0, 2 * out_elems
    if kind == "AveragePooling2D":
        kh, kw = layer.pool_size
        return 0, out_elems * (kh * kw + 1)
    if kind == "MaxPooling2D":
        kh, kw = layer.pool_size
        return 0, out_elems * kh * kw
    if kind in ("Add", "Multiply"):
        return 0, out_elems
    return 0, 0


def _inbound(layer: Any) -> tuple[str, ...]:
    """Names of the layers feeding `layer` (Keras 3 functional graph), empty when unknown."""
    names: list[str] = []
    for node in getattr(layer, "_inbound_nodes", []) or []:
        for tensor in getattr(node, "input_tensors", []) or []:
            history = getattr(tensor, "_keras_history", None)
            operation = getattr(history, "operation", None)
            if operation is not None and operation.name not in names:
                names.append(operation.name)
    return tuple(names)


def load_keras_file(path: str | Path) -> Any:
    """The Keras model in a .keras/.h5 file (uncompiled), or a ValueError naming the file.

    Keras reports a truncated or foreign file as "File not found" (and other damage as one of
    several exception types), so the file is checked first and every load failure is named.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Keras model file")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ValueError(f"not a readable Keras model: {path} (not a zip archive: truncated or other format)")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # damage surfaces as ValueError, KeyError, OSError, zip or JSON errors
        text = str(error).strip()
        # Keras puts the cause last ("Exception encountered: Could not locate class 'Twice'..."):
        # the first line alone was a generic sentence cut before it.
        cause = text.rpartition("Exception encountered:")[2].strip() or text
        detail = (cause.splitlines() or [type(error).__name__])[0].partition(" Full object config")[0][:300]
        raise ValueError(f"not a readable Keras model: {path} ({type(error).__name__}: {detail})") from None


def summarize_keras(model_or_path: Any) -> KerasSummary:
    """Summary of a Keras model object or a .keras/.h5 file."""
    import keras

    path = None
    model = model_or_path
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        model = load_keras_file(path)
    rows = []

    def visit(container: Any) -> None:
        for layer in container.layers:
            if isinstance(layer, keras.Model):
                visit(layer)
                continue
            macs, ops = _keras_cost(layer)
            try:
                shape = _shape_of(layer.output)
                shape_text = "x".join(str(d) for d in shape[1:])
            except (AttributeError, ValueError):
                shape_text = "?"
            rows.append(
                KerasLayerInfo(
                    layer.name,
                    type(layer).__name__,
                    shape_text,
                    layer.count_params(),
                    macs,
                    ops,
                    _inbound(layer),
                )
            )

    visit(model)
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return KerasSummary(
        path=str(path) if path else "<model>",
        name=model.name,
        layers=rows,
        total_params=int(model.count_params()),
        trainable_params=trainable,
        file_size=path.stat().st_size if path else None,
    )
