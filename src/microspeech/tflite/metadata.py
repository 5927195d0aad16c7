"""Model parameters embedded in a .tflite, in Silicon Labs MLTK's `SL_PARAMSv1` format.

The parameters are a flatbuffer "dictionary" (schema `dictionary.fbs` in SiliconLabs/mltk:
a `Dictionary` table with `schema_version` and a vector of `Entry{key, value}` where the
value is a union of typed scalar, list and binary tables), stored as the data of one
model buffer that a `Metadata` entry named `SL_PARAMSv1` points to. Firmware and MLTK's
tools read the same bytes, so value types follow MLTK's automatic choice: non-negative
integers take the smallest unsigned type that holds them, negative ones the smallest signed
type, floats are float32 unless out of float32's normal range (then float64), lists are
str/int32/float lists, `bytes` are binary.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from flatbuffers import number_types as fbn
from flatbuffers.table import Table

from microspeech.checks import is_whole_number
from microspeech.tflite.flatbuffer import load_bytes, pack_model, read_model, unpack_model

METADATA_TAG = "SL_PARAMSv1"
SCHEMA_VERSION = 1

# Union tags of `Value` in dictionary.fbs, in schema order.
_TAGS = {
    "bool": 1,
    "int8": 2,
    "uint8": 3,
    "int16": 4,
    "uint16": 5,
    "int32": 6,
    "uint32": 7,
    "int64": 8,
    "uint64": 9,
    "float": 10,
    "double": 11,
    "str": 12,
    "str_list": 13,
    "int32_list": 14,
    "float_list": 15,
    "bin": 16,
}
_DTYPES = {tag: name for name, tag in _TAGS.items()}
DTYPES: tuple[str, ...] = tuple(_TAGS)

# Scalar dtypes: (flatbuffers number type, inclusive range or None).
_SCALARS: dict[str, tuple[Any, tuple[int, int] | None]] = {
    "bool": (fbn.BoolFlags, None),
    "int8": (fbn.Int8Flags, (-(2**7), 2**7 - 1)),
    "uint8": (fbn.Uint8Flags, (0, 2**8 - 1)),
    "int16": (fbn.Int16Flags, (-(2**15), 2**15 - 1)),
    "uint16": (fbn.Uint16Flags, (0, 2**16 - 1)),
    "int32": (fbn.Int32Flags, (-(2**31), 2**31 - 1)),
    "uint32": (fbn.Uint32Flags, (0, 2**32 - 1)),
    "int64": (fbn.Int64Flags, (-(2**63), 2**63 - 1)),
    "uint64": (fbn.Uint64Flags, (0, 2**64 - 1)),
    "float": (fbn.Float32Flags, None),
    "double": (fbn.Float64Flags, None),
}
_FLOAT32_NORMAL = (1.175494351e-38, 3.402823466e38)


class ParameterError(ValueError):
    """A parameter value that SL_PARAMSv1 cannot hold, or a malformed parameter block."""


def _is_float(value: Any) -> bool:
    return isinstance(value, (float, np.floating))


def infer_dtype(key: str, value: Any) -> str:
    """The dictionary.fbs type MLTK would pick for `value` (see the module docstring)."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if is_whole_number(value):
        candidates = (
            ("uint8", "uint16", "uint32", "uint64") if value >= 0 else ("int8", "int16", "int32", "int64")
        )
        for dtype in candidates:
            low, high = _SCALARS[dtype][1]  # type: ignore[misc]
            if low <= value <= high:
                return dtype
        raise ParameterError(f"parameter {key!r}: integer {value} does not fit in 64 bits")
    if _is_float(value):
        return "float" if _FLOAT32_NORMAL[0] <= value <= _FLOAT32_NORMAL[1] else "double"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bin"
    if isinstance(value, (list, tuple)):
        if not value or all(isinstance(item, str) for item in value):
            return "str_list"
        if all(is_whole_number(item) for item in value):
            return "int32_list"
        if all(_is_float(item) for item in value):
            return "float_list"
        raise ParameterError(
            f"parameter {key!r}: a list must hold only str, only int or only float values, got {value!r}"
        )
    raise ParameterError(
        f"parameter {key!r}: unsupported type {type(value).__name__}; "
        "use bool, int, float, str, bytes or a list of str/int/float"
    )


def _check_value(key: str, dtype: str, value: Any) -> None:
    """ParameterError naming `key` unless `dtype` holds `value` without loss: 1.7 as int8 was
    stored as 1, "abc" as str_list as ['a', 'b', 'c'], 5 as bin as five zero bytes."""
    real = is_whole_number(value) or _is_float(value)
    items = list(value) if isinstance(value, list | tuple | np.ndarray) else None
    if dtype == "bool":
        fits = isinstance(value, bool | np.bool_) or (is_whole_number(value) and value in (0, 1))
    elif dtype in ("float", "double"):
        fits = real
    elif dtype in _SCALARS:
        fits = is_whole_number(value) or (_is_float(value) and float(value).is_integer())
    elif dtype == "str":
        fits = isinstance(value, str)
    elif dtype == "bin":
        fits = isinstance(value, bytes | bytearray | memoryview)
    elif dtype == "str_list":
        fits = items is not None and all(isinstance(item, str) for item in items)
    elif dtype == "int32_list":
        fits = items is not None and all(is_whole_number(item) for item in items)
    elif dtype == "float_list":
        fits = items is not None and all(is_whole_number(item) or _is_float(item) for item in items)
    else:
        return  # an unknown dtype: _build_value names it
    if not fits:
        raise ParameterError(f"parameter {key!r}: {value!r} cannot be stored as {dtype} without loss")


def _build_value(builder: flatbuffers.Builder, key: str, dtype: str, value: Any) -> int:
    """Write one value table; returns its offset."""
    _check_value(key, dtype, value)
    if dtype in _SCALARS:
        flags, bounds = _SCALARS[dtype]
        if dtype == "bool":
            scalar: Any = bool(value)
        elif dtype in ("float", "double"):
            scalar = float(value)
        else:
            scalar = int(value)
            if not bounds[0] <= scalar <= bounds[1]:  # type: ignore[index]
                raise ParameterError(f"parameter {key!r}: {scalar} is out of range for {dtype}")
        builder.StartObject(1)
        builder.PrependSlot(flags, 0, scalar, 0)
        return builder.EndObject()
    if dtype == "str":
        data = builder.CreateString(str(value))
    elif dtype == "bin":
        data = builder.CreateByteVector(bytes(value))
    elif dtype == "str_list":
        strings = [builder.CreateString(str(item)) for item in value]
        builder.StartVector(4, len(strings), 4)
        for offset in reversed(strings):
            builder.PrependUOffsetTRelative(offset)
        data = builder.EndVector()
    elif dtype == "int32_list":
        items = [int(item) for item in value]
        if any(not -(2**31) <= item < 2**31 for item in items):
            raise ParameterError(f"parameter {key!r}: int32_list values must fit in int32")
        builder.StartVector(4, len(items), 4)
        for item in reversed(items):
            builder.PrependInt32(item)
        data = builder.EndVector()
    elif dtype == "float_list":
        items_f = [float(item) for item in value]
        builder.StartVector(4, len(items_f), 4)
        for item in reversed(items_f):
            builder.PrependFloat32(item)
        data = builder.EndVector()
    else:
        raise ParameterError(f"parameter {key!r}: unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, data, 0)
    return builder.EndObject()


def serialize_parameters(params: Mapping[str, Any], dtypes: Mapping[str, str] | None = None) -> bytes:
    """Encode `params` as an SL_PARAMSv1 dictionary flatbuffer (entries keep dict order).

    `dtypes` forces a dictionary.fbs type per key (e.g. {"runtime_memory_size": "int32"});
    others are chosen as MLTK does. A None value is skipped, as in MLTK.
    """
    dtypes = dict(dtypes or {})
    unknown = [key for key in dtypes if dtypes[key] not in _TAGS]
    if unknown:
        raise ParameterError(f"unknown dtype for {unknown}; valid: {', '.join(DTYPES)}")
    builder = flatbuffers.Builder(1024)
    entries = []
    for key, value in params.items():
        if not isinstance(key, str):
            raise ParameterError(f"parameter keys must be str, got {key!r}")
        if value is None:
            continue
        dtype = dtypes.get(key) or infer_dtype(key, value)
        key_offset = builder.CreateString(key)
        value_offset = _build_value(builder, key, dtype, value)
        builder.StartObject(3)
        # Field order as MLTK writes it (key, value, type), so the bytes match MLTK's exactly.
        builder.PrependUOffsetTRelativeSlot(0, key_offset, 0)
        builder.PrependUOffsetTRelativeSlot(2, value_offset, 0)
        builder.PrependUint8Slot(1, _TAGS[dtype], 0)
        entries.append(builder.EndObject())
    builder.StartVector(4, len(entries), 4)
    for offset in reversed(entries):
        builder.PrependUOffsetTRelative(offset)
    entries_vector = builder.EndVector()
    builder.StartObject(2)
    builder.PrependUint8Slot(0, SCHEMA_VERSION, 0)
    builder.PrependUOffsetTRelativeSlot(1, entries_vector, 0)
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())


def _field(table: Table, slot: int) -> int:
    """Absolute position of field `slot`'s data, or 0 when absent."""
    offset = table.Offset(4 + 2 * slot)
    return table.Pos + offset if offset else 0


def _float32(value: float) -> float:
    # The shortest decimal that is the same float32: 0.025 rather than 0.02500000037252903,
    # and writing it back gives the same bits.
    return float(str(np.float32(value))) if math.isfinite(value) else value


def _read_value(buf: bytes, dtype: str, pos: int) -> Any:
    table = Table(buf, pos)
    field = _field(table, 0)
    if dtype in _SCALARS:
        flags = _SCALARS[dtype][0]
        raw = table.Get(flags, field) if field else 0
        if dtype == "bool":
            return bool(raw)
        if dtype == "float":
            return _float32(raw)
        return float(raw) if dtype == "double" else int(raw)
    if not field:
        return {"str": "", "bin": b""}.get(dtype, [])
    if dtype == "str":
        return table.String(field).decode("utf-8")
    start = table.Vector(field - table.Pos)
    length = table.VectorLen(field - table.Pos)
    if dtype == "bin":
        return bytes(buf[start : start + length])
    if dtype == "str_list":
        return [table.String(start + 4 * i).decode("utf-8") for i in range(length)]
    if dtype == "int32_list":
        return np.frombuffer(buf, dtype="<i4", count=length, offset=start).astype(int).tolist()
    if dtype == "float_list":
        return [_float32(v) for v in np.frombuffer(buf, dtype="<f4", count=length, offset=start).tolist()]
    raise AssertionError(dtype)


def deserialize_parameters(data: bytes, with_dtypes: bool = False) -> Any:
    """Decode an SL_PARAMSv1 dictionary flatbuffer to a dict (and {key: dtype} if asked)."""
    buf = bytes(data)
    try:
        root = Table(
            buf, fbn.UOffsetTFlags.py_type(flatbuffers.encode.Get(fbn.UOffsetTFlags.packer_type, buf, 0))
        )
        version_pos = _field(root, 0)
        version = root.Get(fbn.Uint8Flags, version_pos) if version_pos else 0
        if not 1 <= version <= SCHEMA_VERSION:
            raise ParameterError(f"{METADATA_TAG} schema version {version} not supported (expected 1)")
        params: dict[str, Any] = {}
        dtypes: dict[str, str] = {}
        entries_pos = _field(root, 1)
        if entries_pos:
            start = root.Vector(entries_pos - root.Pos)
            for i in range(root.VectorLen(entries_pos - root.Pos)):
                entry = Table(buf, root.Indirect(start + 4 * i))
                key = entry.String(_field(entry, 0)).decode("utf-8")
                tag_pos = _field(entry, 1)
                tag = entry.Get(fbn.Uint8Flags, tag_pos) if tag_pos else 0
                if tag not in _DTYPES:
                    raise ParameterError(f"{METADATA_TAG} entry {key!r} has unknown value type {tag}")
                value_pos = _field(entry, 2)
                params[key] = _read_value(buf, _DTYPES[tag], entry.Indirect(value_pos))
                dtypes[key] = _DTYPES[tag]
    except (IndexError, UnicodeDecodeError, ValueError, struct.error, TypeError, OverflowError) as error:
        if isinstance(error, ParameterError):
            raise
        raise ParameterError(f"malformed {METADATA_TAG} block: {error}") from error
    return (params, dtypes) if with_dtypes else params


def read_metadata(path_or_bytes: str | Path | bytes) -> dict[str, bytes]:
    """Every named metadata entry of a .tflite: name -> the bytes of the buffer it points to.

    The schema lets an entry go without a name; no reader can ask for one, so it is left out.
    """
    tflite_bytes = load_bytes(path_or_bytes)
    model = read_model(tflite_bytes)
    entries: dict[str, bytes] = {}
    for i in range(model.MetadataLength()):
        meta = model.Metadata(i)
        name = meta.Name()
        if name is None:
            continue
        buffer = model.Buffers(meta.Buffer())
        entries[name.decode("utf-8")] = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
    return entries


def read_parameters(path_or_bytes: str | Path | bytes, with_dtypes: bool = False) -> Any:
    """The SL_PARAMSv1 parameters of a .tflite as a dict ({} when the model has none).

    With `with_dtypes=True` returns `(params, {key: dtype})` with the stored dictionary.fbs types.
    """
    block = read_metadata(path_or_bytes).get(METADATA_TAG)
    if block is None:
        return ({}, {}) if with_dtypes else {}
    return deserialize_parameters(block, with_dtypes=with_dtypes)


def write_parameters(
    tflite_bytes: bytes, params: Mapping[str, Any], dtypes: Mapping[str, str] | None = None
) -> bytes:
    """A copy of `tflite_bytes` whose SL_PARAMSv1 metadata holds exactly `params` (a None value is
    left out, as MLTK does; a value its dtype cannot hold without loss is a ParameterError).

    An existing SL_PARAMSv1 block is replaced in place (its buffer reused), otherwise a new
    buffer and metadata entry are appended, as MLTK does. Other metadata is kept. The bytes
    only: a file is changed by writing what this returns.
    """
    if isinstance(tflite_bytes, str | Path):  # the file was read, new bytes returned, the file unchanged
        raise TypeError(
            f"write_parameters({str(tflite_bytes)!r}, ...) takes the .tflite's bytes and returns new "
            "bytes; to change the file: path.write_bytes(write_parameters(path.read_bytes(), params))"
        )
    block = serialize_parameters(params, dtypes)
    model = unpack_model(load_bytes(tflite_bytes))
    data = np.frombuffer(block, dtype=np.uint8)
    model.buffers = model.buffers or []
    model.metadata = model.metadata or []
    for meta in model.metadata:
        name = meta.name.decode("utf-8") if isinstance(meta.name, bytes) else meta.name
        if name == METADATA_TAG:
            model.buffers[meta.buffer] = schema.BufferT(data=data)
            break
    else:
        model.buffers.append(schema.BufferT(data=data))
        entry = schema.MetadataT()
        entry.name = METADATA_TAG
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    return pack_model(model)


def classes_from_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """The `classes` parameter as a list: MLTK stores a list, some tools a comma-separated string."""
    classes = parameters.get("classes")
    if isinstance(classes, str):
        return [name.strip() for name in classes.split(",") if name.strip()]
    return [str(name) for name in classes] if classes else []
