"""Per-layer cycles on Silicon Labs' MVP accelerator (EFR32xG24), from MLTK's compiled simulator.

The silabs-mltk wheel (`pip install --no-deps silabs-mltk==0.20.0`) ships Silicon Labs' TFLite
Micro build and an MVP simulator that plugs into it as an accelerator. They are driven here as
MLTK's `TfliteMicro.profile_model` drives them: `init()`, then
`TfliteMicroModelWrapper().load(flatbuffer, _mvp_wrapper.get_accelerator_wrapper(), True, False,
False, False, [0])` (profiler on), one `invoke()` on a zero input and `get_profiling_results()`.
As in `microspeech.tflite.silabs_tflm`, that happens in a child process
(`python -m microspeech.tflite.mvp`) that loads only numpy and the two extensions: loaded next
to TensorFlow the wrapper binds to TensorFlow's TFLite symbols.

What the simulator gives: per layer, the accelerator cycles and the kernels' load-time messages.
A layer the MVP kernels cannot take logs `OpN-OPCODE not supported: <limit>` (for example
`weights_shape[1] (4000) > 2048` on the FULLY_CONNECTED of MLTK's tflite_micro_speech) and runs
on the CPU's CMSIS-NN kernel. What it does not give: CPU cycles. MLTK estimates those with ONNX
regression models it downloads at run time (`accelerators/mvp/estimator/estimators_url.yaml`);
here the CPU part comes from `microspeech.tflite.profile.CYCLE_MODEL` (a documented Cortex-M33
estimate), so the total is measured accelerator cycles plus an estimate, labelled as such.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microspeech.mltk_wheel import INSTALL_HINT, find_mltk_file
from microspeech.tflite.child import CHILD_SESSION, child_command, protocol_stdout
from microspeech.tflite.silabs_tflm import _receive, _send, log_text

__all__ = ["MvpError", "MvpLayer", "MvpProfile", "mvp_available", "profile_mvp"]

_TFLM_WRAPPER = (("core", "tflite_micro"), "_tflite_micro_wrapper*.so")
_MVP_WRAPPER = (("core", "tflite_micro", "accelerators", "mvp"), "_mvp_wrapper*.so")
# The kernels' load-time message for a layer the MVP cannot run (MLTK parses the same form).
_UNSUPPORTED = re.compile(r"Op(\d+)-(\S+) not supported: (.*)")
CHILD_TIMEOUT_S = 300.0


class MvpError(RuntimeError):
    """The MVP simulator is missing, refused the model or its process died."""


def _wrapper_paths() -> tuple[Path, Path] | None:
    tflm = find_mltk_file(*_TFLM_WRAPPER[0], pattern=_TFLM_WRAPPER[1])
    mvp = find_mltk_file(*_MVP_WRAPPER[0], pattern=_MVP_WRAPPER[1])
    return (tflm, mvp) if tflm is not None and mvp is not None else None


def mvp_available() -> bool:
    """Whether the MVP simulator and Silicon Labs' TFLM (the silabs-mltk wheel) are installed."""
    return _wrapper_paths() is not None


def _load_extension(name: str, path: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a loadable extension")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _simulate(tflm_path: str, mvp_path: str, tflite_bytes: bytes) -> tuple[str, Any]:
    """The child's work: ("profile", results) or ("error", message)."""
    log: list[str] = []
    try:
        tflm = _load_extension("_tflite_micro_wrapper", tflm_path)
        mvp = _load_extension("_mvp_wrapper", mvp_path)
    except ImportError as error:
        return "error", f"cannot load the simulator's libraries: {error}"
    tflm.init()
    tflm.set_logger_callback(log.append)
    if tflm.api_version() != mvp.api_version():
        return "error", (
            f"MVP wrapper API version {mvp.api_version()} != TFLM wrapper API version {tflm.api_version()}"
        )
    # Profiling needs only the cycle counts, not valid outputs (MLTK's profiler sets the same).
    mvp.set_calculate_accelerator_cycles_only_enabled(True)
    model = tflm.TfliteMicroModelWrapper()
    if not model.load(tflite_bytes, mvp.get_accelerator_wrapper(), True, False, False, False, [0]):
        return "error", log_text(log)
    for index in range(model.get_input_size()):
        tensor = model.get_input(index)
        np.copyto(tensor, np.zeros_like(tensor))
    if not model.invoke():
        return "error", "invoke failed: " + log_text(log)
    return "profile", {
        "layers": [dict(result) for result in model.get_profiling_results()],
        "layer_messages": list(model.get_layer_msgs()),
        "details": dict(model.get_details()),
        "log": list(log),
    }


@dataclass
class MvpLayer:
    """One operator: simulated MVP cycles, where it runs, and our CPU-cycle estimate for it."""

    index: int
    opcode: str
    macs: int
    ops: int
    accelerator_cycles: int
    # The kernel's reason when the MVP cannot run the layer (it then runs on the CPU), else None.
    fallback_reason: str | None
    # Cortex-M33 cycles for the CPU's share (microspeech.tflite.profile.CYCLE_MODEL): the whole
    # layer when it runs on the CPU, TFLM's per-layer dispatch when the MVP runs it.
    cpu_cycles_estimate: int

    @property
    def on_accelerator(self) -> bool:
        return self.fallback_reason is None and self.accelerator_cycles > 0

    @property
    def cycles(self) -> int:
        """The layer's time in core-clock cycles: the longer of the accelerator and CPU parts
        (MLTK's rule: `max(accelerator_cycles, cpu_cycles)`)."""
        return max(self.accelerator_cycles, self.cpu_cycles_estimate)

    @property
    def where(self) -> str:
        if self.on_accelerator:
            return "MVP"
        if self.fallback_reason:
            return f"CPU fallback: {self.fallback_reason}"
        return "CPU (MVP not used)"


@dataclass
class MvpProfile:
    """Everything `microspeech profile --accelerator mvp` prints."""

    path: str
    clock_mhz: float
    layers: list[MvpLayer]
    log: list[str] = field(default_factory=list)

    @property
    def accelerator_cycles(self) -> int:
        return sum(layer.accelerator_cycles for layer in self.layers)

    @property
    def total_cycles(self) -> int:
        return sum(layer.cycles for layer in self.layers)

    @property
    def latency_ms(self) -> float:
        return self.total_cycles / (self.clock_mhz * 1e3)

    @property
    def fallbacks(self) -> list[MvpLayer]:
        return [layer for layer in self.layers if layer.fallback_reason]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "accelerator": "mvp",
            "clock_mhz": self.clock_mhz,
            "accelerator_cycles": self.accelerator_cycles,
            "total_cycles": self.total_cycles,
            "latency_ms": self.latency_ms,
            "layers": [asdict(layer) | {"where": layer.where} for layer in self.layers],
            "cpu_cycle_model": "microspeech.tflite.profile.CYCLE_MODEL (Cortex-M33 estimate)",
        }


def _run_child(tflm_path: Path, mvp_path: Path, tflite_bytes: bytes, source: str) -> dict[str, Any]:
    argv, environment = child_command("microspeech.tflite.mvp")
    process = subprocess.Popen(
        argv,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=CHILD_SESSION,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        _send(process.stdin, (str(tflm_path), str(mvp_path), bytes(tflite_bytes)))
        process.stdin.close()
        status, detail = _receive(process.stdout)
    except (EOFError, BrokenPipeError, OSError) as error:
        # communicate() flushes stdin first, and a closed one raised "flush of closed file",
        # which hid the crash: closed here, if the send failed first, and handed back.
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.stdin = None
        try:
            _, stderr = process.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        lines = stderr.decode("utf-8", "replace").strip().splitlines() if stderr else []
        # The last message, not the last frame of a backtrace (indented lines).
        last = [line for line in lines if line[:1].strip()][-1:] or lines[-1:]
        raise MvpError(
            f"{source}: the MVP simulator process ended (exit code {process.returncode})"
            + (f": {last[0]}" if last else "")
        ) from error
    except BaseException:
        # Ctrl-C or kill here: the child, in a session of its own, simulates on until it writes its
        # reply; waiting for it below would hang for CHILD_TIMEOUT_S.
        process.kill()
        raise
    finally:
        process.stdout.close()
        if process.poll() is None:
            try:
                process.wait(timeout=CHILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
    if status != "profile":
        raise MvpError(f"{source}: the MVP simulator could not run the model: {detail}")
    return detail


def profile_mvp(path_or_bytes: str | Path | bytes, *, clock_mhz: float = 78.0) -> MvpProfile:
    """Simulated MVP cycles per layer, CPU fallbacks with their reasons, and the total at `clock_mhz`.

    Raises MvpError when the wheel is missing, the simulator refuses the model or its process dies.
    """
    from microspeech.tflite.flatbuffer import hybrid_layers, hybrid_message, load_bytes
    from microspeech.tflite.profile import CYCLE_MODEL, estimate_mcu_latency
    from microspeech.tflite.summary import summarize_tflite

    if clock_mhz <= 0:
        raise ValueError(f"--clock-mhz must be positive, got {clock_mhz}")
    source = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else "<bytes>"
    paths = _wrapper_paths()
    if paths is None:
        raise MvpError(
            f"--accelerator mvp needs Silicon Labs' MVP simulator from the MLTK wheel ({INSTALL_HINT})"
        )
    tflite_bytes = load_bytes(path_or_bytes)
    try:
        summary = summarize_tflite(tflite_bytes)
    except Exception as error:  # noqa: BLE001 (any parse failure means "not a .tflite")
        raise MvpError(f"{source}: not a readable .tflite model ({error})") from error
    if hybrid := hybrid_layers(tflite_bytes):
        # The simulator "runs" such a model and reports cycles for kernels the part would refuse.
        raise MvpError(f"{source}: the MVP and TFLM cannot run {hybrid_message(hybrid)}")
    results = _run_child(*paths, tflite_bytes, source)
    reasons = {}
    for message in results["layer_messages"]:
        if match := _UNSUPPORTED.search(message):
            reasons[int(match.group(1))] = match.group(3).strip()
    cpu_per_layer = estimate_mcu_latency(summary, clock_mhz).per_layer_ms
    dispatch = int(CYCLE_MODEL["cycles_per_layer"])
    layers = []
    for index, (result, info) in enumerate(zip(results["layers"], summary.layers, strict=True)):
        accelerator_cycles = int(result.get("accelerator_cycles", 0))
        reason = reasons.get(index)
        on_accelerator = reason is None and accelerator_cycles > 0
        cpu_cycles = round(cpu_per_layer[index] * clock_mhz * 1e3)
        layers.append(
            MvpLayer(
                index=index,
                opcode=info.opcode,
                # As `summarize` and `profile` count them (MLTK's rules): the simulator's profiler
                # counts a CONV_2D's requantization and a SOFTMAX's steps too (652,000 against 644,000).
                macs=info.macs,
                ops=info.ops,
                accelerator_cycles=accelerator_cycles,
                fallback_reason=reason,
                cpu_cycles_estimate=dispatch if on_accelerator else cpu_cycles,
            )
        )
    return MvpProfile(
        path=source,
        clock_mhz=clock_mhz,
        layers=layers,
        log=[line[2:].strip() for line in results["log"]],
    )


if __name__ == "__main__":
    replies = protocol_stdout()
    _send(replies, _simulate(*_receive(sys.stdin.buffer)))
