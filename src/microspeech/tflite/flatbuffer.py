"""Read and rewrite the .tflite flatbuffer (TFLite's own schema, shipped with ai_edge_litert).

One place turns a .tflite into the mutable object tree (`ModelT`) and back, so metadata
edits and graph surgery share the same packing rules.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

TFLITE_FILE_IDENTIFIER = b"TFL3"
# The converter aligns constant buffers to 16 bytes; keep that so int32 biases and
# weights stay aligned for firmware that memory-maps the model (Cortex-M0 faults otherwise).
BUFFER_ALIGNMENT = 16


def load_bytes(path_or_bytes: str | Path | bytes | bytearray | memoryview) -> bytes:
    """The .tflite bytes from a path or from bytes; names the file when it is not a .tflite."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        where = "the given bytes"
    else:
        path = Path(path_or_bytes)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such .tflite file")
        data = path.read_bytes()
        where = str(path)
    if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
        raise ValueError(f"{where}: not a .tflite flatbuffer (file identifier TFL3 missing)")
    return data


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
