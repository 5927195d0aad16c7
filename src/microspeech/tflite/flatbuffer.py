"""Read and rewrite the .tflite flatbuffer (TFLite's own schema, shipped with ai_edge_litert).

One place turns a .tflite into the mutable object tree (`ModelT`) and back, so metadata
edits and graph surgery share the same packing rules.
"""

from __future__ import annotations

import functools
import lzma
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

TFLITE_FILE_IDENTIFIER = b"TFL3"
# The converter aligns constant buffers to 16 bytes; keep that so int32 biases and
# weights stay aligned for firmware that memory-maps the model (Cortex-M0 faults otherwise).
BUFFER_ALIGNMENT = 16


# No microcontroller model comes near this; a larger file or archive member is refused unread.
MAX_TFLITE_BYTES = 64 * 2**20
# Reading garbage through the generated accessors fails with these (offsets out of range,
# short vectors, bad strings); the safe reader turns each into a TfliteFormatError.
_MALFORMED = (
    struct.error,
    IndexError,
    ValueError,
    TypeError,
    UnicodeDecodeError,
    OverflowError,
    RecursionError,
)


class TfliteFormatError(ValueError):
    """Bytes that are not a valid .tflite flatbuffer; the message names the file and the defect."""


def read_file_capped(path: Path, limit: int = MAX_TFLITE_BYTES, *, what: str = "file") -> bytes:
    """The bytes of `path`, refusing folders, unreadable files and files over `limit` with a named error."""
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        size = path.stat().st_size
        if size > limit:
            raise TfliteFormatError(
                f"{path}: {size:,} bytes; a {what} of at most {limit:,} bytes is accepted"
            )
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except PermissionError as error:
        raise PermissionError(f"{path}: permission denied (the {what} is not readable)") from error
    if len(data) > limit:
        raise TfliteFormatError(f"{path}: larger than {limit:,} bytes; refused")
    return data


def read_archive_member(
    path: Path, suffix: str = ".tflite", limit: int = MAX_TFLITE_BYTES
) -> tuple[str, bytes]:
    """(member name, bytes) of the shallowest `suffix` member of a zip archive (MLTK's .mltk.zip);
    beside MLTK's float build (NAME.float32.tflite), the other one, as MLTK loads it.

    The member is read in chunks and refused past `limit` bytes, whatever its header claims, so
    a small archive that expands to gigabytes costs nothing; a truncated or corrupt archive is a
    TfliteFormatError naming the file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if info.filename.endswith(suffix)]
            if not members:
                raise TfliteFormatError(f"{path}: the archive holds no {suffix} model")
            depth = min(info.filename.count("/") for info in members)
            shallowest = sorted(info.filename for info in members if info.filename.count("/") == depth)
            if len(shallowest) > 1:
                # MLTK stores its float build beside the model as NAME.float32.tflite and loads NAME.tflite.
                quantized = [name for name in shallowest if not name.endswith(".float32" + suffix)]
                shallowest = quantized if len(quantized) == 1 else shallowest
            if len(shallowest) > 1:  # the first by name was taken silently
                raise TfliteFormatError(
                    f"{path}: the archive holds {len(shallowest)} {suffix} models ({', '.join(shallowest)}); "
                    "which one is meant? Extract it and give its path"
                )
            member = next(info for info in members if info.filename == shallowest[0])
            if member.file_size > limit:
                raise TfliteFormatError(
                    f"{path}: member {member.filename} expands to {member.file_size:,} bytes; "
                    f"at most {limit:,} are accepted"
                )
            chunks: list[bytes] = []
            total = 0
            with archive.open(member) as stream:
                while chunk := stream.read(1 << 20):
                    total += len(chunk)
                    if total > limit:
                        raise TfliteFormatError(
                            f"{path}: member {member.filename} expands past {limit:,} bytes (its header "
                            f"claims {member.file_size:,}); refused"
                        )
                    chunks.append(chunk)
            return Path(member.filename).stem, b"".join(chunks)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        NotImplementedError,
        OSError,
        zlib.error,
        lzma.LZMAError,
        *_MALFORMED,
    ) as error:
        if isinstance(error, (TfliteFormatError, PermissionError, FileNotFoundError, IsADirectoryError)):
            raise
        raise TfliteFormatError(f"{path}: not a readable zip archive ({error})") from error


def load_bytes(
    path_or_bytes: str | Path | bytes | bytearray | memoryview, *, where: str | None = None
) -> bytes:
    """The .tflite bytes from a path or from bytes, checked to be a well-formed flatbuffer;
    `where` names bytes read elsewhere in the errors (a file's path).

    Errors: FileNotFoundError/IsADirectoryError/PermissionError naming the file, or
    TfliteFormatError ("not a valid .tflite: ...") for anything that is not a readable model.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        where = where or "the given bytes"
    else:
        if not str(path_or_bytes).strip():  # Path("") is the current folder
            raise FileNotFoundError("an empty path: give a .tflite file")
        path = Path(path_or_bytes)
        # MLTK's .mltk.zip (by its name or its bytes, as read_tflite_file decides): the model inside it
        if path.name.endswith(".zip") or (path.is_file() and zipfile.is_zipfile(path)):
            member, data = read_archive_member(path) if path.is_file() else (None, read_file_capped(path))
            where = f"{path} ({member}.tflite)"
        else:
            data = read_file_capped(path, what=".tflite file")
            where = str(path)
    if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
        raise TfliteFormatError(f"{where}: not a .tflite flatbuffer (file identifier TFL3 missing)")
    check_flatbuffer(data, where)
    return data


@functools.lru_cache(maxsize=16)
def _flatbuffer_defect(tflite_bytes: bytes) -> str | None:
    """Why the bytes are not a readable Model (None when every reachable offset is in range)."""
    size = len(tflite_bytes)
    if size > MAX_TFLITE_BYTES:
        return f"{size:,} bytes; at most {MAX_TFLITE_BYTES:,} are accepted"
    try:
        model = read_model(tflite_bytes)
        # Shared offsets could make a small file unpack to a huge tree: bound the fan-out first.
        fan_out = model.BuffersLength() + model.MetadataLength() + model.OperatorCodesLength()
        for index in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(index)
            fan_out += 1 + subgraph.TensorsLength() + subgraph.OperatorsLength()
            if fan_out > size:
                break
        if fan_out > size:
            return "more tables than the file has bytes"
        if model.SubgraphsLength() == 0:
            return "no subgraph"
        unpacked = schema.ModelT.InitFromObj(model)
        for meta in unpacked.metadata or []:
            (meta.name or b"").decode("utf-8")
            if not 0 <= meta.buffer < len(unpacked.buffers or []):
                return f"metadata {meta.name!r} points to buffer {meta.buffer}, which does not exist"
        codes = len(unpacked.operatorCodes or [])
        known_types = tensor_type_names()
        for subgraph in unpacked.subgraphs or []:
            tensors = subgraph.tensors or []
            for tensor in tensors:
                if tensor.type not in known_types:
                    return f"tensor {_shown(tensor.name)} has type code {tensor.type}, which does not exist"
                try:
                    (tensor.name or b"").decode("utf-8")
                except UnicodeDecodeError:
                    return f"the tensor name {_shown(tensor.name)} is not UTF-8 text"
                if not 0 <= tensor.buffer < len(unpacked.buffers or []):
                    name = _shown(tensor.name)
                    return f"tensor {name} points to buffer {tensor.buffer}, which does not exist"
            # Every index a reader follows: an operator's code and tensors, the graph's inputs and outputs.
            for kind, indices in (("input", subgraph.inputs), ("output", subgraph.outputs)):
                for index in _indices(indices):
                    if not 0 <= index < len(tensors):
                        return f"a subgraph {kind} is tensor {index}, which does not exist"
            for number, op in enumerate(subgraph.operators or []):
                if not 0 <= op.opcodeIndex < codes:
                    return f"operator {number} has operator code {op.opcodeIndex}, which does not exist"
                for index in [*_indices(op.inputs), *_indices(op.outputs)]:
                    if not -1 <= index < len(tensors):  # -1: an optional input left out
                        return f"operator {number} uses tensor {index}, which does not exist"
    except _MALFORMED as error:
        return f"an offset or length is out of range ({type(error).__name__}: {error})"
    return None


def _shown(name: bytes | None) -> str:
    """A tensor's name for a message, cut short: a damaged file's 'name' can run for kilobytes."""
    text = repr(name or b"")
    return text if len(text) <= 70 else text[:67] + "..."


def _indices(values: object) -> list[int]:
    """A flatbuffer index vector as ints (unpacked as a numpy array, a list or None)."""
    return [] if values is None else [int(value) for value in values]  # type: ignore[attr-defined]


def check_flatbuffer(tflite_bytes: bytes, where: str = "the given bytes") -> None:
    """TfliteFormatError "not a valid .tflite: ..." unless every table and vector reads in range."""
    defect = _flatbuffer_defect(bytes(tflite_bytes))
    if defect is not None:
        raise TfliteFormatError(f"{where}: not a valid .tflite: {defect}")


def read_model(tflite_bytes: bytes) -> schema.Model:
    """Read-only view of the Model table (no copy)."""
    return schema.Model.GetRootAs(tflite_bytes, 0)


def unpack_model(tflite_bytes: bytes) -> schema.ModelT:
    """The whole model as a mutable object tree."""
    return schema.ModelT.InitFromObj(read_model(tflite_bytes))


class _AlignedBufferT(schema.BufferT):
    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (flatbuffers naming)
        data_offset = None
        if self.data is not None and len(self.data) > 0:
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data_offset = builder.EndVector()
        schema.BufferStart(builder)
        if data_offset is not None:
            schema.BufferAddData(builder, data_offset)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def pack_model(model: schema.ModelT) -> bytes:
    """Serialize a `ModelT` to .tflite bytes, constant buffers aligned to 16 bytes."""
    if model.buffers:
        aligned = []
        for buffer in model.buffers:
            copy = _AlignedBufferT()
            if buffer is not None:
                copy.data, copy.offset, copy.size = buffer.data, buffer.offset, buffer.size
            aligned.append(copy)
        model.buffers = aligned
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), TFLITE_FILE_IDENTIFIER)
    return bytes(builder.Output())


def builtin_op_names() -> dict[int, str]:
    """BuiltinOperator code -> name ("CONV_2D", ...)."""
    return {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def tensor_type_names() -> dict[int, str]:
    """TensorType code -> lower-case name ("int8", ...)."""
    return {
        value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")
    }


# Layers whose weights a dynamic-range ("hybrid") conversion keeps int8 under a float input:
# the positions of their data and weight inputs (TRANSPOSE_CONV's first is the output shape).
_WEIGHTED_OPS = {
    "CONV_2D": (0, 1),
    "DEPTHWISE_CONV_2D": (0, 1),
    "FULLY_CONNECTED": (0, 1),
    "TRANSPOSE_CONV": (2, 1),
    "BATCH_MATMUL": (0, 1),
}


def operator_names(tflite_bytes: bytes) -> list[str]:
    """Builtin op names of every operator in the main subgraph, in execution order."""
    names = builtin_op_names()
    model = read_model(tflite_bytes)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    subgraph = model.Subgraphs(0)
    ops = []
    for i in range(subgraph.OperatorsLength()):
        code = codes[subgraph.Operators(i).OpcodeIndex()]
        ops.append(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return ops


def _weighted_layers(tflite_bytes: bytes) -> Iterator[tuple[int, str, str, str]]:
    """(index, opcode, data type, weight type) of each weighted layer of the main graph."""
    graph = read_model(tflite_bytes).Subgraphs(0)
    types = tensor_type_names()
    for index, name in enumerate(operator_names(tflite_bytes)):
        op = graph.Operators(index)
        positions = _WEIGHTED_OPS.get(name)
        if positions is None or op.InputsLength() <= max(positions):
            continue
        indices = [op.Inputs(position) for position in positions]
        if min(indices) < 0:
            continue
        data, weights = (types[graph.Tensors(tensor).Type()] for tensor in indices)
        yield index, name, data, weights


def quantization_kind(tflite_bytes: bytes) -> str:
    """"int8" (integer weights and arithmetic, whatever the input type: a converter may keep a
    float input and quantize it inside), "hybrid" (integer weights under float inputs) or the
    weights' float type ("float32"); a graph without weighted layers by its input's type."""
    layers = list(_weighted_layers(tflite_bytes))
    if not layers:
        graph = read_model(tflite_bytes).Subgraphs(0)
        return tensor_type_names()[graph.Tensors(graph.Inputs(0)).Type()]
    if any(_is_hybrid(data, weights) for _, _, data, weights in layers):
        return "hybrid"
    floats = [weights for _, _, _, weights in layers if weights.startswith("float")]
    return floats[0] if floats else "int8"


def _is_hybrid(data: str, weights: str) -> bool:
    return data in ("float32", "float16") and weights in ("int8", "uint8", "int4")


def hybrid_layers(tflite_bytes: bytes) -> list[str]:
    """"layer N OPCODE" for each layer of the main graph with a float input and integer weights
    (dynamic-range quantization): TFLM's kernels refuse them, and Silicon Labs' build crashes on
    them instead of saying so."""
    return [
        f"layer {index} {name}"
        for index, name, data, weights in _weighted_layers(tflite_bytes)
        if _is_hybrid(data, weights)
    ]


def hybrid_message(layers: list[str]) -> str:
    """What `hybrid_layers` found, in words, with the way out."""
    return (
        f"{', '.join(layers)}: a float input with int8 weights (dynamic-range quantization); "
        "convert with full int8 quantization (as `microspeech train` does)"
    )
