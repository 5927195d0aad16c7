"""Run a .tflite with LiteRT (its optimized builtin kernels or its reference ones; XNNPACK off),
TFLite Micro, or Silicon Labs' TFLM.

Three backends behind one small class so evaluation, profiling and tests can compare
them sample for sample: firmware runs TFLM, so "what the device computes" is the TFLM output.
"silabs-tflm" is the TFLM build Silicon Labs ships compiled in the silabs-mltk wheel (the
kernels of their SDK); it is older than the `tflite-micro` package, so a .tflite can compute
differently there (see `microspeech.tflite.parity`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from microspeech.checks import is_whole_number
from microspeech.mltk_wheel import INSTALL_HINT
from microspeech.tflite.flatbuffer import load_bytes, read_model, tensor_type_names, unpack_model
from microspeech.tflite.silabs_tflm import SilabsTflmProcess, silabs_tflm_available

Backend = Literal["litert", "tflm", "silabs-tflm"]
BACKENDS: tuple[str, ...] = ("litert", "tflm", "silabs-tflm")
# Most samples per invoke of `TfliteRunner.predict` on LiteRT (integer models): about half the
# time per sample of one invoke each.
BATCH = 64
# Samples from which `predict` splits a batch between two threads, each with interpreters of
# its own (LiteRT's invoke releases the GIL; one intra-op thread each, as for one sample).
TWO_LANES_FROM = 8 * BATCH
# Samples from which Silicon Labs' TFLM splits a batch between two child processes. Each child
# computes sample by sample (~0.65 ms each for the seed model), so even halves of 2 gain: the
# firmware checks after detection resets send batches of 4-64, mostly under 16. A 20-minute
# `tune --runtime silabs-tflm`, seed model: those batches 0.68 -> 0.43 ms a sample, 11.2 -> 9.2 s.
SILABS_TWO_LANES_FROM = 4
# Headroom over the tensor bytes for TFLM's persistent structures (nodes, eval tensors, op data).
_TFLM_ARENA_OVERHEAD = 16 * 1024


@dataclass(frozen=True)
class TensorDetails:
    """An input or output tensor: shape, dtype and its (per-tensor) quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def is_quantized(self) -> bool:
        return self.scale != 0.0

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Float values -> this tensor's integer type (round to nearest, saturate)."""
        if not self.is_quantized:
            return np.asarray(values, dtype=self.dtype)
        info = np.iinfo(self.dtype)
        scaled = np.round(np.asarray(values, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(scaled, info.min, info.max).astype(self.dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """This tensor's integers -> float32 (identity for float tensors)."""
        values = np.asarray(values)
        if not self.is_quantized:
            return values.astype(np.float32)
        return ((values.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


def default_tflm_arena_size(tflite_bytes: bytes) -> int:
    """An arena that surely fits: every tensor's bytes plus headroom (profile finds the minimum)."""
    model = read_model(tflite_bytes)
    itemsize = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 11: 8}  # TensorType -> bytes
    total = 0
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            elements = int(np.prod(tensor.ShapeAsNumpy())) if tensor.ShapeLength() else 1
            total += max(elements, 1) * itemsize.get(tensor.Type(), 4)
    return 2 * total + _TFLM_ARENA_OVERHEAD


@contextlib.contextmanager
def capture_native_output() -> Iterator[list[str]]:
    """Redirect the C-level stdout/stderr (TFLM's MicroPrintf) into a list of lines."""
    lines: list[str] = []
    # Python's own buffered output goes out first, so none of it lands in the sink
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            yield lines
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def tflm_reason(lines: list[str]) -> str:
    """TFLM's own messages (captured native output) as "; TFLM said: ...", each line once; "" if none.
    An op or type TFLM lacks is said there, where the exception only says allocation failed."""
    said = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    return f"; TFLM said: {' | '.join(said[-4:])}" if said else ""


def _litert_resolver(reference_kernels: bool) -> Any:
    from ai_edge_litert.interpreter import OpResolverType

    return (
        OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )


_TENSOR_BYTES = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "float16": 2, "int32": 4, "float32": 4}


def arena_floor(tflite_bytes: bytes) -> int:
    """A size no arena below which can work: the largest sum of one operator's non-constant
    input and output tensors (they are live together), and at least 1 kB.

    The arena search never runs TFLM below it: in arenas of a few hundred bytes TFLM's
    allocator crashes the process (a segfault, not an error) instead of reporting the shortfall.
    """
    model = unpack_model(load_bytes(tflite_bytes))
    names = tensor_type_names()
    buffers = model.buffers or []

    def live_bytes(tensor: Any) -> int:
        buffer = buffers[tensor.buffer] if 0 <= tensor.buffer < len(buffers) else None
        if buffer is not None and buffer.data is not None and len(buffer.data) > 0:
            return 0  # a constant lives in the flatbuffer, not in the arena
        shape = tensor.shape if tensor.shape is not None else []
        count = int(np.prod([max(int(d), 1) for d in shape]))
        return count * _TENSOR_BYTES.get(names.get(tensor.type, ""), 8)

    floor = 1024
    for subgraph in model.subgraphs or []:
        tensors = subgraph.tensors or []
        for operator in subgraph.operators or []:
            indices = [*(operator.inputs if operator.inputs is not None else [])]
            indices += [*(operator.outputs if operator.outputs is not None else [])]
            live = sum(live_bytes(tensors[int(i)]) for i in indices if 0 <= int(i) < len(tensors))
            floor = max(floor, live)
    return floor


def _core_shape(shape: tuple[int, ...] | Any) -> tuple[int, ...]:
    """A shape without its axes of 1: how a sample is compared with the model's input."""
    return tuple(int(d) for d in shape if int(d) != 1)


def _fits(shape: tuple[int, ...], model_shape: tuple[int, ...] | Any) -> bool:
    """A sample of `shape` is the model's input: the same up to axes of 1, flattened, or for a
    flat input (TF micro_speech's 1x1960) the frames x channels it flattens row by row."""
    core, model_core = _core_shape(shape), _core_shape(model_shape)
    if core == model_core:
        return True
    if len(core) == 1 and core[0] == int(np.prod(model_shape)):
        return True
    # A flat input holds no shape to check against: a transposed (40, 49) sample passes too.
    return len(model_core) == 1 and model_core[0] == int(np.prod(shape))


def _check_arena_size(arena_size: int, tflite_bytes: bytes, source: str) -> None:
    """An arena TFLM can be asked for: below the floor its allocator kills the process (SIGSEGV)."""
    if not is_whole_number(arena_size):
        raise TypeError(f"arena_size={arena_size!r}: expected a number of bytes (an int)")
    floor = arena_floor(tflite_bytes)
    if arena_size < floor:
        raise ValueError(
            f"arena_size={arena_size}: below the {floor:,} bytes {source}'s largest operator needs "
            "(its live input and output tensors); microspeech.tflite.profile.find_min_arena_size finds "
            "the smallest that works"
        )


def available_backends() -> tuple[str, ...]:
    """The backends this machine can run: litert and tflm always, silabs-tflm with the MLTK wheel."""
    return BACKENDS if silabs_tflm_available() else BACKENDS[:2]


def check_backend(backend: str, option: str) -> Backend:
    """`backend` when it names one this machine runs; ValueError naming `option` otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"{option} {backend}: expected one of {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise ValueError(f"{option} {backend}: Silicon Labs' TFLM is not installed ({INSTALL_HINT})")
    return backend  # type: ignore[return-value]


class TfliteRunner:
    """One .tflite, one interpreter: `predict(batch)` runs it sample by sample.

    backend="litert": ai_edge_litert with its builtin kernels and no default delegate (XNNPACK
    would change int8 rounding on some ops); `reference_kernels=True` uses LiteRT's reference
    kernels instead (10x slower; the parity check's reference). backend="tflm":
    the TFLite Micro interpreter from the `tflite-micro` package, in an arena of
    `arena_size` bytes (default: generous; see `microspeech.tflite.profile.find_min_arena_size`).
    backend="silabs-tflm": Silicon Labs' TFLM build from the MLTK wheel, in a child process
    (`microspeech.tflite.silabs_tflm`; no accelerator; arena sized by the wrapper or `arena_size`).
    `single_output=False` admits models with several outputs (`predict_outputs`).

    One runner is not for several threads at once (LiteRT refuses a second invoke while the first
    holds the tensors): give each thread a runner of its own (`predict` itself uses two lanes).
    """

    def __init__(
        self,
        path_or_bytes: str | Path | bytes,
        backend: Backend = "litert",
        *,
        arena_size: int | None = None,
        num_threads: int = 1,
        single_output: bool = True,
        reference_kernels: bool = False,
        source: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")
        self.tflite_bytes = load_bytes(path_or_bytes)
        # What errors name: the file, or `source` for bytes read from one (a spotter's model).
        given = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else None
        self.source = source or given or "<bytes>"
        self.backend: Backend = backend
        self.arena_size: int | None = None
        # LiteRT's interpreters by lane (thread of `predict`) and batch size (None: not possible).
        self._batched: list[dict[int, Any]] = [{}, {}]
        self._lane_pool: ThreadPoolExecutor | None = None
        if backend == "litert":
            self._litert_options = {
                "model_content": self.tflite_bytes,
                "experimental_op_resolver_type": _litert_resolver(reference_kernels),
                "num_threads": num_threads,
            }
            from ai_edge_litert.interpreter import Interpreter

            try:
                self._litert = Interpreter(**self._litert_options)
                self._litert.allocate_tensors()
            except RuntimeError as error:  # an op it lacks (a custom op): said with the file
                message = " ".join(str(error).split())
                raise RuntimeError(f"{self.source}: LiteRT could not prepare the model: {message}") from error
            except ValueError as error:  # its reader's own checks ("not a valid Flatbuffer buffer"), the
                # signature names' text (UnicodeDecodeError is one), a tensor's size: named by the file
                message = " ".join(str(error).split())
                raise ValueError(f"{self.source}: LiteRT could not read the model: {message}") from error
            inputs = self._litert.get_input_details()
            outputs = self._litert.get_output_details()
            self._input_indices = [d["index"] for d in inputs]
            self._output_indices = [d["index"] for d in outputs]
        elif backend == "silabs-tflm":
            self._silabs_arena = arena_size
            self._silabs = self._silabs_child()
            # Started by the first batch long enough to share (`predict`).
            self._silabs_second: SilabsTflmProcess | None = None
            inputs, outputs = (
                [_flatbuffer_details(self.tflite_bytes, which, i) for i in range(self._count_io(which))]
                for which in ("Inputs", "Outputs")
            )
        else:
            from tflite_micro.python.tflite_micro import runtime as tflm

            if arena_size is not None:
                _check_arena_size(arena_size, self.tflite_bytes, self.source)
            self.arena_size = arena_size or default_tflm_arena_size(self.tflite_bytes)
            self._tflm = self._prepare_tflm(tflm.Interpreter, explicit=arena_size is not None)
            inputs = [self._tflm.get_input_details(i) for i in range(self._count_io("Inputs"))]
            outputs = [self._tflm.get_output_details(i) for i in range(self._count_io("Outputs"))]
        names = self._io_names()
        self.inputs = [_details(d, names[0][i]) for i, d in enumerate(inputs)]
        self.outputs = [_details(d, names[1][i]) for i, d in enumerate(outputs)]
        if len(self.inputs) != 1 or (single_output and len(self.outputs) != 1):
            raise ValueError(
                f"{self.source}: expected one input and one output tensor, "
                f"found {len(self.inputs)} and {len(self.outputs)}"
            )

    def _prepare_tflm(self, interpreter: Any, *, explicit: bool) -> Any:
        """TFLM's interpreter in `self.arena_size` bytes. The default size counts tensors, not the
        kernels' scratch buffers (TRANSPOSE_CONV needs more): without a size asked for, larger
        arenas are tried before giving up, and the error carries TFLM's own reason."""
        tries = 1 if explicit else 4
        for attempt in range(tries):
            with capture_native_output() as said:
                try:
                    return interpreter.from_bytes(self.tflite_bytes, arena_size=self.arena_size)
                except RuntimeError as error:
                    failure = error
            if attempt + 1 < tries:
                self.arena_size *= 4
        # Larger arenas only help where TFLM ran out of room, not where it lacks an op or type.
        too_small = not said or any("resize buffer" in line for line in said)
        advice = "; pass a larger arena_size" if explicit and too_small else ""
        raise RuntimeError(
            f"{self.source}: TFLM could not prepare the model in a {self.arena_size}-byte arena "
            f"({failure}{tflm_reason(said)}){advice}"
        ) from failure

    def _count_io(self, which: str) -> int:
        subgraph = read_model(self.tflite_bytes).Subgraphs(0)
        return int(getattr(subgraph, f"{which}Length")())

    def _io_names(self) -> tuple[list[str], list[str]]:
        subgraph = read_model(self.tflite_bytes).Subgraphs(0)

        def name(index: int) -> str:
            raw = subgraph.Tensors(index).Name()
            return raw.decode("utf-8") if raw else f"tensor_{index}"

        return (
            [name(subgraph.Inputs(i)) for i in range(subgraph.InputsLength())],
            [name(subgraph.Outputs(i)) for i in range(subgraph.OutputsLength())],
        )

    @property
    def input_details(self) -> TensorDetails:
        return self.inputs[0]

    @property
    def output_details(self) -> TensorDetails:
        return self.outputs[0]

    def _prepare(self, sample: np.ndarray) -> np.ndarray:
        details = self.input_details
        sample = np.asarray(sample)
        # The model's shape up to axes of 1 ((49, 40) fits (1, 49, 40, 1)), or flattened; the size
        # alone let a transposed (40, 49) sample through.
        if not _fits(sample.shape, details.shape):
            raise ValueError(
                f"input of shape {sample.shape} does not fit the model input {details.shape} ({self.source})"
            )
        if sample.dtype != details.dtype:
            if np.issubdtype(details.dtype, np.integer):
                if not np.issubdtype(sample.dtype, np.integer):
                    raise ValueError(
                        f"model input is {details.dtype.name} but got {sample.dtype.name}; "
                        "quantize with runner.input_details.quantize(x)"
                    )
                info = np.iinfo(details.dtype)
                if sample.size and (sample.min() < info.min or sample.max() > info.max):
                    raise ValueError(
                        f"input values outside the {details.dtype.name} range of the model input"
                    )
            sample = sample.astype(details.dtype)
        return np.ascontiguousarray(sample.reshape(details.shape))

    def predict_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output tensor for one sample, as copies in the model's output shapes."""
        sample = self._prepare(x)
        if self.backend == "litert":
            self._litert.set_tensor(self._input_indices[0], sample)
            self._litert.invoke()
            raw = [self._litert.get_tensor(index) for index in self._output_indices]
        elif self.backend == "silabs-tflm":
            raw = self._silabs_run([sample])[0]
        else:
            self._tflm.set_input(sample, 0)
            self._tflm.invoke()
            raw = [self._tflm.get_output(i) for i in range(len(self.outputs))]
        return [np.array(value).reshape(out.shape) for value, out in zip(raw, self.outputs, strict=True)]

    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """Raw output for one sample (the output shape without its batch dimension)."""
        return self.predict_outputs(x)[0].reshape(self.output_details.shape[1:])

    def predict_ready(self, sample: np.ndarray) -> np.ndarray:
        """`predict_one` for a sample already in the input's dtype and size (the streaming loop's
        own buffer): LiteRT skips `_prepare`'s checks, a third of the firmware loop's time."""
        if self.backend != "litert":
            return self.predict_one(sample)
        self._litert.set_tensor(self._input_indices[0], sample.reshape(self.input_details.shape))
        self._litert.invoke()
        return self._litert.get_tensor(self._output_indices[0]).reshape(self.output_details.shape[1:])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs for a batch: (N, *output_shape[1:]), each sample's output as `predict_one`
        gives it. LiteRT runs integer models up to BATCH samples per invoke, in interpreters
        sized to powers of two (integer kernels compute each sample alone, so the outputs are the
        same; tests check it); other models and backends one sample per invoke, Silicon Labs' TFLM
        in two child processes from SILABS_TWO_LANES_FROM samples (half each)."""
        batch = np.asarray(batch)
        if batch.ndim and _core_shape(batch.shape) == _core_shape(self.input_details.shape):
            if _core_shape(batch.shape[1:]) != _core_shape(self.input_details.shape):  # not (1, 49, 40)
                raise ValueError(
                    f"predict takes a batch (N, ...); {batch.shape} is one sample of the model input "
                    f"{self.input_details.shape}: use predict_one, or batch[None] ({self.source})"
                )
        outputs = np.empty((len(batch), *self.output_details.shape[1:]), dtype=self.output_details.dtype)
        if self.backend == "silabs-tflm":  # one round trip to the child process per batch
            results = self._silabs_run([self._prepare(sample) for sample in batch])
            for i, result in enumerate(results):
                outputs[i] = result[0].reshape(outputs.shape[1:])
            return outputs
        sample_shape = self.input_details.shape[1:]
        if (
            len(batch) > 1
            and batch.dtype == self.input_details.dtype
            and _fits(batch.shape[1:], sample_shape)
            and self._batch_interpreter(2) is not None
        ):
            samples = batch.reshape(len(batch), *sample_shape)
            if len(batch) < TWO_LANES_FROM:
                self._predict_lane(samples, outputs, 0)
                return outputs
            # The first lane takes whole batches up to the middle, the second thread the rest.
            middle = len(batch) // 2 // BATCH * BATCH
            if self._lane_pool is None:
                self._lane_pool = ThreadPoolExecutor(1, thread_name_prefix="litert-lane")
            second = self._lane_pool.submit(self._predict_lane, samples[middle:], outputs[middle:], 1)
            self._predict_lane(samples[:middle], outputs[:middle], 0)
            second.result()
            return outputs
        for i, sample in enumerate(batch):
            outputs[i] = self.predict_one(sample)
        return outputs

    def _silabs_run(self, samples: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Silicon Labs' outputs for `samples`: a second child takes the second half of a long
        batch meanwhile (each computes sample by sample). After any exception both children are
        replaced: one may hold an unread reply (an invoke error, Ctrl-C between send and receive),
        which the next batch would get."""
        try:
            if len(samples) < SILABS_TWO_LANES_FROM:
                return self._silabs.run(samples)
            if self._silabs_second is None:
                self._silabs_second = self._silabs_child()
            middle = len(samples) // 2
            self._silabs.submit(samples[:middle])
            self._silabs_second.submit(samples[middle:])
            return self._silabs.collect() + self._silabs_second.collect()
        except BaseException:
            self._restart_silabs()
            raise

    def _restart_silabs(self) -> None:
        for process in (self._silabs, self._silabs_second):
            if process is not None:
                process.kill()
        self._silabs_second = None
        self._silabs = self._silabs_child()

    def _silabs_child(self) -> SilabsTflmProcess:
        return SilabsTflmProcess(self.tflite_bytes, self._silabs_arena, source=self.source)

    def _predict_lane(self, samples: np.ndarray, outputs: np.ndarray, lane: int) -> None:
        """outputs[i] for samples[i], up to BATCH per invoke, with `lane`'s interpreters."""
        start = 0
        while start < len(samples):
            size = min(BATCH, 1 << (len(samples) - start).bit_length() - 1)  # 37 left: 32, 4, 1
            interpreter = self._batch_interpreter(size, lane)
            if interpreter is None:  # a size the graph refused: this sample alone
                size, interpreter = 1, self._batch_interpreter(1, lane)
            chunk = np.ascontiguousarray(samples[start : start + size])
            interpreter.set_tensor(self._input_indices[0], chunk)
            interpreter.invoke()
            result = interpreter.get_tensor(self._output_indices[0])
            outputs[start : start + size] = result.reshape(size, *outputs.shape[1:])
            start += size

    def _batch_interpreter(self, size: int, lane: int = 0) -> Any:
        """LiteRT's interpreter of `lane` for `size` samples per invoke (lane 0, size 1: the
        runner's own), for integer models whose graph allows it (a reshape that fixes the batch
        to 1 does not); else None (size 1 always has one)."""
        if size == 1 and lane == 0:
            return self._litert
        batched = self._batched[lane]
        if size not in batched:
            batched[size] = None
            integer = all(
                np.issubdtype(t.dtype, np.integer) for t in (self.input_details, self.output_details)
            )
            # Size 2 first tells whether the graph allows batches at all (`predict` asks for it).
            possible = size == 1 or (integer and (size == 2 or self._batched[0].get(2) is not None))
            if self.backend == "litert" and possible:
                from ai_edge_litert.interpreter import Interpreter

                interpreter = Interpreter(**self._litert_options)
                try:
                    interpreter.resize_tensor_input(
                        self._input_indices[0], [size, *self.input_details.shape[1:]]
                    )
                    interpreter.allocate_tensors()
                    shape = tuple(interpreter.get_tensor(self._output_indices[0]).shape)
                except (RuntimeError, ValueError):
                    shape = ()
                if shape == (size, *self.output_details.shape[1:]):
                    batched[size] = interpreter
        return batched[size]


def _flatbuffer_details(tflite_bytes: bytes, which: str, position: int) -> dict:
    """A graph input or output described from the flatbuffer, in the shape interpreters report."""
    subgraph = read_model(tflite_bytes).Subgraphs(0)
    tensor = subgraph.Tensors(getattr(subgraph, which)(position))
    quant = tensor.Quantization()
    return {
        "shape": tensor.ShapeAsNumpy().tolist() if tensor.ShapeLength() else [],
        "dtype": np.dtype(tensor_type_names()[tensor.Type()]),
        "quantization_parameters": {
            "scales": quant.ScaleAsNumpy() if quant is not None and quant.ScaleLength() else [],
            "zero_points": quant.ZeroPointAsNumpy() if quant is not None and quant.ZeroPointLength() else [],
        },
    }


def _details(raw: dict, name: str) -> TensorDetails:
    quant = raw.get("quantization_parameters") or {}
    scales = np.asarray(quant.get("scales", []), dtype=np.float64)
    zero_points = np.asarray(quant.get("zero_points", []), dtype=np.int64)
    return TensorDetails(
        name=name,
        shape=tuple(int(v) for v in raw["shape"]),
        dtype=np.dtype(raw["dtype"]),
        scale=float(scales[0]) if scales.size else 0.0,
        zero_point=int(zero_points[0]) if zero_points.size else 0,
    )
