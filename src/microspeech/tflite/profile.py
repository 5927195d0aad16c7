"""How a .tflite runs: smallest TFLM arena, per-layer cost, host latency, an MCU estimate.

Arena: TFLM allocates everything in `AllocateTensors`, so the smallest arena is found by
bisection on "the interpreter prepares and one inference runs". The host build is 64-bit,
where TFLM's bookkeeping structs hold 8-byte pointers; on a 32-bit Cortex-M they shrink.
`estimate_arena_32bit` rescales the pointer-bearing categories that TFLM's recording
allocator reports (see its docstring); tensor data (the "head") is the same on both.

Latency on a microcontroller is an estimate from a cycles-per-operation model (see
`CYCLE_MODEL`), not a measurement.
"""

from __future__ import annotations

import pickle
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.tflite.child import CHILD_SESSION, child_command, protocol_stdout
from microspeech.tflite.flatbuffer import load_bytes
from microspeech.tflite.runtime import (
    TfliteRunner,
    arena_floor,
    capture_native_output,
    default_tflm_arena_size,
)
from microspeech.tflite.summary import ModelSummary, summarize_tflite

# A first-order cycle model for int8 kernels on a Cortex-M33 with the DSP extension running
# TFLM's CMSIS-NN kernels (no accelerator). Where the constants come from:
# - cycles_per_mac: CMSIS-NN's int8 convolution / fully-connected inner loops widen int8
#   pairs to int16 with SXTB16 and accumulate two products per SMLAD (Lai, Suda, Chandra,
#   "CMSIS-NN: Efficient Neural Network Kernels for Arm Cortex-M CPUs", arXiv:1801.06601);
#   SMLAD issues in one cycle on Cortex-M33 (Arm Cortex-M33 TRM, DSP instruction timing).
#   Counting loads, SXTB16s and SMLADs per 4 MACs gives about 1 cycle per MAC at best; 1.5
#   adds the im2col copies, loop control and per-output requantization.
# - cycles_per_op_elementwise: the element loops (RESHAPE copy, softmax, pooling, bias add
#   outside the MAC loop) load, compute and store each element: ~2 cycles.
# - cycles_per_layer: TFLM's per-operator dispatch and bookkeeping, ~2,000 cycles.
# It ignores memory wait states and caches; treat the result as +-50 %, printed as an estimate.
CYCLE_MODEL: dict[str, float] = {
    "cycles_per_mac": 1.5,
    "cycles_per_op_elementwise": 2.0,
    "cycles_per_layer": 2000.0,
}
DEFAULT_CLOCK_MHZ = 78.0  # the EFR32xG24 (Cortex-M33) maximum core clock

# sizeof() on a 32-bit target / sizeof() on the 64-bit host, per category of TFLM's recording
# allocator, from the TF_LITE_STATIC_MEMORY structs in tensorflow/lite/core/c/common.h:
# - TfLiteEvalTensor {data ptr, dims ptr, type}: 24 -> 12 B;
# - TfLiteTensor {quantization {enum, ptr}, params {float, int32}, data ptr, dims ptr, size_t
#   bytes, type, allocation_type, bool}: 64 -> 40 B;
# - per-tensor quantization: TfLiteAffineQuantization {2 ptrs, int32} 24 -> 12 B plus a
#   one-element zero-point TfLiteIntArray (8 B on both): 32 -> 20 B;
# - NodeAndRegistration: TfLiteNode {6 ptrs, int} + registration ptr: 64 -> 32 B.
# Op data ("Persistent buffer data") and the rest of the tail are kept as measured: the
# estimate errs high.
_POINTER_CATEGORY_RATIO = {
    "TfLiteEvalTensor data": 12 / 24,
    "Persistent TfLiteTensor data": 40 / 64,
    "Persistent TfLiteTensor quantization data": 20 / 32,
    "NodeAndRegistration struct": 32 / 64,
}


def _arena_error(
    tflite_bytes: bytes, arena_size: int, sample: np.ndarray, source: str | None = None
) -> RuntimeError | None:
    """Why one inference fails in an arena of `arena_size` bytes (TFLM's words included); None: it runs."""
    try:
        TfliteRunner(tflite_bytes, "tflm", arena_size=arena_size, source=source).predict_one(sample)
    except RuntimeError as error:
        return error
    return None


def _arena_works(tflite_bytes: bytes, arena_size: int, sample: np.ndarray) -> bool:
    return _arena_error(tflite_bytes, arena_size, sample) is None


def find_min_arena_size(
    path_or_bytes: str | Path | bytes, *, upper: int | None = None, source: str | None = None
) -> int:
    """Smallest TFLM arena (bytes, host build) in which the model prepares and runs one inference.

    Bisection between `arena_floor` and a size that works: 1 byte less fails. TFLM's own messages
    about the failed allocations are swallowed.
    """
    tflite_bytes = load_bytes(path_or_bytes)
    source = source or (str(path_or_bytes) if isinstance(path_or_bytes, str | Path) else None)
    probe = TfliteRunner(tflite_bytes, "litert", source=source)
    sample = np.zeros(probe.input_details.shape, dtype=probe.input_details.dtype)
    floor = arena_floor(tflite_bytes)
    high = max(upper or default_tflm_arena_size(tflite_bytes), floor)
    with capture_native_output():  # what a failing invoke prints; a failing prepare's is in the error
        for attempt in range(8):
            error = _arena_error(tflite_bytes, high, sample, source)
            if error is None:
                break
            if attempt < 7:
                high *= 2
    if error is not None:  # TFLM's own words, not the arena size, say why (an op or type it lacks)
        reason = str(error).removesuffix("; pass a larger arena_size")
        raise RuntimeError(f"{reason}; no arena up to {high:,} bytes worked")
    with capture_native_output():
        low = floor - 1  # below the floor nothing can work (and TFLM may crash): never tried
        while high - low > 1:
            middle = (low + high) // 2
            if _arena_works(tflite_bytes, middle, sample):
                high = middle
            else:
                low = middle
    return high


def _min_arena_of(tflite_bytes: bytes, source: str | None) -> int:
    """`find_min_arena_size` with positional arguments, for `run_isolated`'s child."""
    return find_min_arena_size(tflite_bytes, source=source)


@dataclass
class ArenaReport:
    """TFLM's arena use (host, 64-bit) and the 32-bit estimate."""

    min_arena_bytes: int
    head_bytes: int
    tail_bytes: int
    categories: dict[str, int] = field(default_factory=dict)
    estimated_32bit_bytes: int = 0


_TOTAL = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_CATEGORY = re.compile(r"'([^']+)' used (\d+) bytes")


def run_isolated(function: Any, *args: Any, doing: str) -> Any:
    """`function(*args)` in a fresh interpreter; its result or exception comes back here.

    TFLM fails some allocations by crashing the process (a segfault, not an error). In a child
    that becomes a RuntimeError naming the signal and `doing`, so the user sees one line instead
    of a silent exit 139. The child is `python -m microspeech.tflite.profile`, fed a pickle on
    stdin: multiprocessing's spawn would run the caller's script again, which a plain script
    without a `__main__` guard does not survive. `function` must be importable by name.
    """
    argv, environment = child_command("microspeech.tflite.profile")
    child = subprocess.run(
        argv,
        env=environment,
        input=pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL),
        capture_output=True,  # stderr: TFLM's allocation chatter, whose last line explains a failure
        check=False,
        start_new_session=CHILD_SESSION,
    )
    try:
        succeeded, value = pickle.loads(child.stdout)
    except Exception as error:  # noqa: BLE001 (nothing or a cut reply: the child died)
        code = child.returncode
        last = child.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        said = f": {last[0]}" if last else ""
        if code == 0:  # it ended normally, yet its answer cannot be read back here
            raise RuntimeError(f"the child process {doing} sent no readable result ({error})") from None
        if code > 0:  # Python itself failed there (an import, a broken environment), not TFLM
            raise RuntimeError(f"the child process {doing} failed (exit code {code}){said}") from None
        signal_name = signal.Signals(-code).name
        raise RuntimeError(f"TFLM crashed (signal {signal_name}) while {doing}{said}") from None
    if not succeeded:
        raise value
    return value


def _serve_isolated() -> None:
    """The child of `run_isolated`: one call, its outcome pickled to the real stdout (anything the
    C++ code prints goes to stderr)."""
    replies = protocol_stdout()
    function, args = pickle.loads(sys.stdin.buffer.read())
    try:
        outcome: tuple[bool, Any] = (True, function(*args))
    except Exception as error:  # noqa: BLE001 (sent back, raised there)
        outcome = (False, error)
    try:
        payload = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 (an exception that does not pickle: keep its message)
        payload = pickle.dumps((False, RuntimeError(str(outcome[1]))))
    replies.write(payload)
    replies.flush()


def arena_report(
    path_or_bytes: str | Path | bytes, min_arena_bytes: int | None = None, *, source: str | None = None
) -> ArenaReport:
    """Minimum arena plus TFLM's recording-allocator breakdown and the 32-bit estimate.

    The arena search runs in a child process (`run_isolated`): should TFLM crash on an arena it
    is tried with, the error names it instead of the command dying without a word.
    """
    tflite_bytes = load_bytes(path_or_bytes)
    source = source or (str(path_or_bytes) if isinstance(path_or_bytes, str | Path) else None)
    minimum = min_arena_bytes or run_isolated(
        _min_arena_of, tflite_bytes, source, doing="searching for the smallest arena that runs the model"
    )
    runner = TfliteRunner(tflite_bytes, "tflm", arena_size=minimum, source=source)
    runner.predict_one(np.zeros(runner.input_details.shape, dtype=runner.input_details.dtype))
    with capture_native_output() as lines:
        runner._tflm.print_allocations()
    totals = {m.group(1): int(m.group(2)) for line in lines if (m := _TOTAL.search(line))}
    categories = {m.group(1): int(m.group(2)) for line in lines if (m := _CATEGORY.search(line))}
    report = ArenaReport(minimum, totals.get("head", 0), totals.get("tail", 0), categories)
    report.estimated_32bit_bytes = estimate_arena_32bit(report)
    return report


def estimate_arena_32bit(report: ArenaReport) -> int:
    """Host arena minus what the pointer-bearing structs lose on a 32-bit MCU.

    Tensor buffers (head) are identical; each tail category in `_POINTER_CATEGORY_RATIO` is
    scaled by its struct's 32/64-bit size ratio; the rest of the tail is kept. Rounded up to
    TFLM's 16-byte buffer alignment.
    """
    saved = sum(
        used * (1.0 - _POINTER_CATEGORY_RATIO[name])
        for name, used in report.categories.items()
        if name in _POINTER_CATEGORY_RATIO
    )
    estimate = report.min_arena_bytes - int(saved)
    return int(-(-estimate // 16) * 16)


@dataclass(frozen=True)
class HostLatency:
    """One inference's wall time on this host: median and spread over `runs` timed runs."""

    backend: str
    runs: int
    median_ms: float
    p10_ms: float
    p90_ms: float


def host_latency(
    path_or_bytes: str | Path | bytes, *, runs: int = 200, backend: str = "litert", source: str | None = None
) -> HostLatency:
    """Median (and spread) of `runs` single inferences on this host, after 10 warm-up runs."""
    runner = TfliteRunner(path_or_bytes, backend, source=source)  # type: ignore[arg-type]
    details = runner.input_details
    rng = np.random.default_rng(0)
    info = np.iinfo(details.dtype) if np.issubdtype(details.dtype, np.integer) else None
    sample = (
        rng.integers(info.min, info.max + 1, size=details.shape).astype(details.dtype)
        if info is not None
        else rng.standard_normal(details.shape).astype(details.dtype)
    )
    for _ in range(10):
        runner.predict_one(sample)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.predict_one(sample)
        times.append((time.perf_counter() - start) * 1e3)
    return HostLatency(
        backend=backend,
        runs=runs,
        median_ms=statistics.median(times),
        p10_ms=float(np.percentile(times, 10)),
        p90_ms=float(np.percentile(times, 90)),
    )


@dataclass(frozen=True)
class McuEstimate:
    """Estimated Cortex-M33 cost from `CYCLE_MODEL` (an estimate, not a measurement)."""

    clock_mhz: float
    cycles: int
    latency_ms: float
    per_layer_ms: list[float]
    model: dict[str, float]  # the CYCLE_MODEL constants it used


def estimate_mcu_latency(summary: ModelSummary, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> McuEstimate:
    """Estimated Cortex-M33 (DSP, CMSIS-NN, no accelerator) latency from `CYCLE_MODEL`."""
    if clock_mhz <= 0:
        raise ValueError(f"--clock-mhz must be positive, got {clock_mhz}")
    per_layer = []
    for layer in summary.layers:
        elementwise = max(layer.ops - 2 * layer.macs, 0) if layer.macs else layer.ops
        cycles = (
            layer.macs * CYCLE_MODEL["cycles_per_mac"]
            + elementwise * CYCLE_MODEL["cycles_per_op_elementwise"]
            + CYCLE_MODEL["cycles_per_layer"]
        )
        per_layer.append(cycles)
    total = sum(per_layer)
    return McuEstimate(
        clock_mhz=clock_mhz,
        cycles=int(total),
        latency_ms=total / (clock_mhz * 1e3),
        per_layer_ms=[c / (clock_mhz * 1e3) for c in per_layer],
        model=dict(CYCLE_MODEL),
    )


@dataclass(frozen=True)
class WithoutReshape:
    """The same model with its redundant RESHAPEs removed (`tflite.graph`): what it would save."""

    min_arena_bytes: int
    estimated_32bit_bytes: int
    total_ops: int
    file_size: int
    mcu_latency_ms: float


@dataclass
class ProfileReport:
    """Everything `microspeech profile` prints."""

    path: str
    summary: ModelSummary
    arena: ArenaReport
    host: HostLatency
    mcu: McuEstimate
    host_tflm: HostLatency | None = None
    without_reshape: WithoutReshape | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "file_size": self.summary.file_size,
            "total_macs": self.summary.total_macs,
            "total_ops": self.summary.total_ops,
            "layers": [
                {"index": layer.index, "opcode": layer.opcode, "macs": layer.macs, "ops": layer.ops}
                for layer in self.summary.layers
            ],
            "arena": asdict(self.arena),
            "host_latency": asdict(self.host),
            "host_latency_tflm": None if self.host_tflm is None else asdict(self.host_tflm),
            "mcu_estimate": asdict(self.mcu),
            "without_reshape": None if self.without_reshape is None else asdict(self.without_reshape),
        }


def profile_model(
    path_or_bytes: str | Path | bytes, *, clock_mhz: float = DEFAULT_CLOCK_MHZ, runs: int = 200
) -> ProfileReport:
    """Arena, per-layer cost, host latency and the MCU estimate; also the RESHAPE-free variant."""
    from microspeech.checks import check_int, check_number
    from microspeech.tflite.graph import remove_redundant_reshapes

    check_number(clock_mhz, "clock_mhz", low=0.001, high=10_000.0)
    check_int(runs, "runs", low=1, high=1_000_000)

    tflite_bytes = load_bytes(path_or_bytes)
    summary = summarize_tflite(tflite_bytes)
    if isinstance(path_or_bytes, (str, Path)):
        summary.path = str(path_or_bytes)
    source = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else None
    arena = arena_report(tflite_bytes, source=source)
    report = ProfileReport(
        path=summary.path,
        summary=summary,
        arena=arena,
        host=host_latency(tflite_bytes, runs=runs, source=source),
        host_tflm=host_latency(tflite_bytes, runs=runs, backend="tflm", source=source),
        mcu=estimate_mcu_latency(summary, clock_mhz),
    )
    slim = remove_redundant_reshapes(tflite_bytes)
    if slim != tflite_bytes:
        slim_summary = summarize_tflite(slim)
        slim_arena = arena_report(slim)
        report.without_reshape = WithoutReshape(
            min_arena_bytes=slim_arena.min_arena_bytes,
            estimated_32bit_bytes=slim_arena.estimated_32bit_bytes,
            total_ops=slim_summary.total_ops,
            file_size=len(slim),
            mcu_latency_ms=estimate_mcu_latency(slim_summary, clock_mhz).latency_ms,
        )
    return report


if __name__ == "__main__":
    _serve_isolated()
