"""Graph surgery on a converted .tflite that keeps its outputs bit for bit.

`remove_input_reshape`: a Keras model that takes (frames, channels) and adds the channel
axis with a Reshape layer converts to a leading RESHAPE; making its output the graph input
(same bytes, one more unit dimension) drops that copy.

`remove_reshape_before_fully_connected`: the converter puts a RESHAPE (a copy in TFLM)
between a convolution and the FULLY_CONNECTED that reads it. FULLY_CONNECTED flattens its
input itself (rows = elements / weight depth, with keep_num_dims false), so it can read the
4-D tensor directly; TFLM then needs neither the copy nor the reshaped tensor, which lowers
the peak of its arena plan (the seed model's largest live pair was RESHAPE in + out).

`free_reshape_batch`: a RESHAPE between layers (ds_cnn's 49x1x10 -> 49x10x1) converts with its
target shape fixed to batch 1, so LiteRT cannot run the graph on a batch of inputs and stream
scoring falls back to one input per invoke. A stretch (-1) in the batch position computes the
same at batch 1 in every runtime, and any batch in LiteRT.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from microspeech.tflite.flatbuffer import builtin_op_names, load_bytes, pack_model, unpack_model


def _opcode_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return builtin_op_names().get(max(code.builtinCode, code.deprecatedBuiltinCode), "")


def _same_quantization(a: schema.TensorT, b: schema.TensorT) -> bool:
    qa, qb = a.quantization, b.quantization

    def values(q: schema.QuantizationParametersT | None) -> tuple:
        if q is None:
            return ((), ())
        return (
            tuple(np.asarray(q.scale if q.scale is not None else []).tolist()),
            tuple(np.asarray(q.zeroPoint if q.zeroPoint is not None else []).tolist()),
        )

    return values(qa) == values(qb)


def remove_reshape_before_fully_connected(tflite_bytes: bytes) -> bytes:
    """Drop every RESHAPE whose only consumers are FULLY_CONNECTED ops reading it as their input.

    A RESHAPE is removed only when the rewrite is exact: same type and quantization on both
    sides, the FC flattens (keep_num_dims false) to the same rows x depth, and the reshaped
    tensor is not a graph output. Unused tensors, buffers and op codes are pruned. Returns
    the input unchanged when nothing qualifies.
    """
    tflite_bytes = load_bytes(tflite_bytes)
    model = unpack_model(tflite_bytes)
    changed = False
    for subgraph in model.subgraphs or []:
        operators = list(subgraph.operators or [])
        graph_outputs = set(np.asarray(subgraph.outputs if subgraph.outputs is not None else []).tolist())
        for op in list(operators):
            if _opcode_name(model, op) != "RESHAPE":
                continue
            source, reshaped = int(op.inputs[0]), int(op.outputs[0])
            if reshaped in graph_outputs:
                continue
            consumers = [o for o in operators if o is not op and reshaped in np.asarray(o.inputs).tolist()]
            readable = all(_fc_can_read(model, subgraph, c, source, reshaped) for c in consumers)
            if not consumers or not readable:
                continue
            if not _same_quantization(subgraph.tensors[source], subgraph.tensors[reshaped]):
                continue
            for consumer in consumers:
                consumer.inputs = np.asarray(
                    [source if int(i) == reshaped else int(i) for i in consumer.inputs], dtype=np.int32
                )
            operators.remove(op)
            changed = True
        subgraph.operators = operators
    if not changed:
        return tflite_bytes
    _prune(model)
    return pack_model(model)


def remove_input_reshape(tflite_bytes: bytes) -> bytes:
    """Make a RESHAPE that only reshapes the graph input (e.g. 1x49x40 -> 1x49x40x1) the input itself.

    The input then has the reshaped shape (same bytes in the same order, so firmware and
    `TfliteRunner` feed it unchanged) and TFLM skips one copy. Only when the graph input
    feeds nothing else and both tensors have the same type and quantization.
    """
    tflite_bytes = load_bytes(tflite_bytes)
    model = unpack_model(tflite_bytes)
    changed = False
    for subgraph_index, subgraph in enumerate(model.subgraphs or []):
        operators = list(subgraph.operators or [])
        inputs = [int(i) for i in subgraph.inputs]
        for op in list(operators):
            if _opcode_name(model, op) != "RESHAPE" or int(op.inputs[0]) not in inputs:
                continue
            source, reshaped = int(op.inputs[0]), int(op.outputs[0])
            other_readers = [o for o in operators if o is not op and source in np.asarray(o.inputs).tolist()]
            source_t, reshaped_t = subgraph.tensors[source], subgraph.tensors[reshaped]
            if other_readers or source in np.asarray(subgraph.outputs).tolist():
                continue
            if source_t.type != reshaped_t.type or not _same_quantization(source_t, reshaped_t):
                continue
            reshaped_t.name = source_t.name
            reshaped_t.shapeSignature = None
            inputs = [reshaped if i == source else i for i in inputs]
            for signature in model.signatureDefs or []:
                if signature.subgraphIndex == subgraph_index:
                    for entry in signature.inputs or []:
                        if int(entry.tensorIndex) == source:
                            entry.tensorIndex = reshaped
            operators.remove(op)
            changed = True
        subgraph.inputs = np.asarray(inputs, dtype=np.int32)
        subgraph.operators = operators
    if not changed:
        return tflite_bytes
    _prune(model)
    return pack_model(model)


def free_reshape_batch(tflite_bytes: bytes) -> bytes:
    """Let every RESHAPE with a constant target of batch 1 ([1, ...]) take any batch ([-1, ...]).

    Only when its input's first dimension is 1 as well, so at batch 1 the stretch resolves to
    the same 1 and the graph computes what it did. The target tensor gets a buffer of its own
    (a converter may share constant buffers). Returns the input unchanged when nothing qualifies.
    """
    tflite_bytes = load_bytes(tflite_bytes)
    model = unpack_model(tflite_bytes)
    changed = False
    for subgraph in model.subgraphs or []:
        for op in subgraph.operators or []:
            if _opcode_name(model, op) != "RESHAPE" or len(op.inputs) < 2:
                continue
            source_t, target_t = subgraph.tensors[int(op.inputs[0])], subgraph.tensors[int(op.inputs[1])]
            data = model.buffers[target_t.buffer].data if target_t.buffer else None
            if data is None or target_t.type != schema.TensorType.INT32:
                continue
            target = np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)), dtype="<i4").copy()
            source_shape = np.asarray(source_t.shape).tolist()
            if len(target) < 2 or target[0] != 1 or not source_shape or source_shape[0] != 1 or -1 in target:
                continue
            target[0] = -1
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(target.tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            target_t.buffer = len(model.buffers) - 1
            options = op.builtinOptions
            if isinstance(options, schema.ReshapeOptionsT) and options.newShape is not None:
                options.newShape = np.asarray(target, dtype=np.int32)
            changed = True
    if not changed:
        return tflite_bytes
    _prune(model)
    return pack_model(model)


def expose_layer_outputs(tflite_bytes: bytes) -> tuple[bytes, list[str]]:
    """The same graph with every operator's output as a graph output, in execution order.

    Returns (model bytes, one label per output: "<index> <OP_NAME> <tensor name>"). Running
    it in two interpreters shows the first layer where they part; the values of each tensor
    are those of the original graph (outputs are only kept alive, not recomputed).
    """
    model = unpack_model(load_bytes(tflite_bytes))
    subgraph = model.subgraphs[0]
    outputs: list[int] = []
    labels: list[str] = []
    for index, op in enumerate(subgraph.operators or []):
        for tensor_index in np.asarray(op.outputs).tolist():
            if tensor_index not in outputs:
                outputs.append(int(tensor_index))
                name = subgraph.tensors[tensor_index].name
                name = name.decode() if isinstance(name, bytes) else str(name)
                labels.append(f"{index} {_opcode_name(model, op)} {name}")
    subgraph.outputs = np.asarray(outputs, dtype=np.int32)
    model.signatureDefs = None
    return pack_model(model), labels


def remove_redundant_reshapes(tflite_bytes: bytes) -> bytes:
    """Both removals: the input RESHAPE and the RESHAPE before FULLY_CONNECTED."""
    return remove_reshape_before_fully_connected(remove_input_reshape(tflite_bytes))


def simplify_graph(tflite_bytes: bytes) -> bytes:
    """Every exact rewrite: the redundant RESHAPEs removed, the batch of any other RESHAPE freed."""
    return free_reshape_batch(remove_redundant_reshapes(tflite_bytes))


def _fc_can_read(
    model: schema.ModelT, subgraph: schema.SubGraphT, op: schema.OperatorT, source: int, reshaped: int
) -> bool:
    if _opcode_name(model, op) != "FULLY_CONNECTED" or int(op.inputs[0]) != reshaped:
        return False
    if any(int(i) == reshaped for i in list(op.inputs)[1:]):
        return False
    options = op.builtinOptions
    if options is not None and getattr(options, "keepNumDims", False):
        return False
    source_t, reshaped_t, weights_t = (subgraph.tensors[i] for i in (source, reshaped, int(op.inputs[1])))
    if source_t.type != reshaped_t.type:
        return False
    depth = int(weights_t.shape[-1])
    source_elements = int(np.prod(source_t.shape))
    reshaped_elements = int(np.prod(reshaped_t.shape))
    # FC sees rows = elements / depth either way, and the data order is unchanged by RESHAPE
    return source_elements == reshaped_elements and source_elements % depth == 0


def _prune(model: schema.ModelT) -> None:
    """Remove tensors no op uses, then unused buffers and op codes; renumber every reference."""
    used_buffers = {0} | {int(meta.buffer) for meta in model.metadata or []}
    if model.metadataBuffer is not None:
        used_buffers |= {int(b) for b in model.metadataBuffer}
    used_codes: set[int] = set()
    tensor_remaps = []
    for subgraph in model.subgraphs or []:
        used = set(np.asarray(subgraph.inputs).tolist()) | set(np.asarray(subgraph.outputs).tolist())
        for op in subgraph.operators or []:
            used_codes.add(int(op.opcodeIndex))
            for field in ("inputs", "outputs", "intermediates"):
                values = getattr(op, field)
                if values is not None:
                    used |= {int(i) for i in values if int(i) >= 0}
        keep = sorted(used)
        remap = {old: new for new, old in enumerate(keep)}
        tensor_remaps.append(remap)

        def renumber(values: object, remap: dict[int, int] = remap) -> np.ndarray:
            return np.asarray([remap[int(i)] if int(i) >= 0 else -1 for i in values], dtype=np.int32)

        subgraph.tensors = [subgraph.tensors[i] for i in keep]
        subgraph.inputs = renumber(subgraph.inputs)
        subgraph.outputs = renumber(subgraph.outputs)
        for op in subgraph.operators or []:
            for field in ("inputs", "outputs", "intermediates"):
                values = getattr(op, field)
                if values is not None:
                    setattr(op, field, renumber(values))
        used_buffers |= {int(tensor.buffer) for tensor in subgraph.tensors}
    for signature in model.signatureDefs or []:
        remap = tensor_remaps[signature.subgraphIndex]
        for entry in list(signature.inputs or []) + list(signature.outputs or []):
            entry.tensorIndex = remap[int(entry.tensorIndex)]
    _prune_buffers(model, used_buffers)
    _prune_opcodes(model, used_codes)


def _prune_buffers(model: schema.ModelT, used: set[int]) -> None:
    keep = sorted(b for b in used if b < len(model.buffers))
    remap = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors:
            tensor.buffer = remap[int(tensor.buffer)]
    for meta in model.metadata or []:
        meta.buffer = remap[int(meta.buffer)]
    if model.metadataBuffer is not None:
        model.metadataBuffer = np.asarray([remap[int(b)] for b in model.metadataBuffer], dtype=np.int32)


def _prune_opcodes(model: schema.ModelT, used: set[int]) -> None:
    keep = sorted(used)
    remap = {old: new for new, old in enumerate(keep)}
    model.operatorCodes = [model.operatorCodes[i] for i in keep]
    for subgraph in model.subgraphs or []:
        for op in subgraph.operators or []:
            op.opcodeIndex = remap[int(op.opcodeIndex)]
