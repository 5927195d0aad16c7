"""Silicon Labs' TFLite Micro build (from the silabs-mltk wheel), run in a process of its own.

The wrapper shares TFLite's symbol names with TensorFlow: loaded into a process where
TensorFlow is already loaded it binds to TensorFlow's kernels (other struct layouts) and
prepares nothing, and loading it with RTLD_DEEPBIND instead hangs on some Python builds
(Debian 12's 3.11.2). A child process that imports only numpy and the wrapper avoids both:
`python -m microspeech.tflite.silabs_tflm` (so no caller's script runs again), fed
length-prefixed pickles on stdin, answering on stdout.
The child is driven as MLTK's `TfliteMicroModel` drives the wrapper: `init()`, `load(flatbuffer,
None, False, False, False, False, [arena])`, then input / `invoke()` / outputs per sample.
"""

from __future__ import annotations

import importlib.util
import pickle
import struct
import subprocess
import sys
from typing import Any, BinaryIO

import numpy as np

from microspeech.mltk_wheel import INSTALL_HINT, find_mltk_file
from microspeech.tflite.child import CHILD_SESSION, child_command, protocol_stdout
from microspeech.tflite.flatbuffer import hybrid_layers, hybrid_message

__all__ = ["SilabsTflmError", "SilabsTflmProcess", "silabs_tflm_available"]

_WRAPPER = (("core", "tflite_micro"), "_tflite_micro_wrapper*.so")


class SilabsTflmError(RuntimeError):
    """Silicon Labs' TFLM refused the model or an inference."""


def silabs_tflm_available() -> bool:
    """Whether Silicon Labs' compiled TFLM (the silabs-mltk wheel) is installed."""
    return find_mltk_file(*_WRAPPER[0], pattern=_WRAPPER[1]) is not None


def log_text(log: list[str]) -> str:
    """The wrapper's log lines as one line: level letters ("E ", "W ") dropped, blank lines and
    repeats left out (a model failing in every layer said the same sentence 19 times)."""
    lines = dict.fromkeys(" ".join(line[2:].split()) for line in log)
    return "; ".join(line for line in lines if line) or "no message"


def _send(stream: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(payload)) + payload)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the other side closed the pipe")
    (size,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(size))


def _serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """The child: load the wrapper and the model, then answer batches until told to stop."""
    wrapper_path, tflite_bytes, arena_size = _receive(requests)
    log: list[str] = []
    spec = importlib.util.spec_from_file_location("_tflite_micro_wrapper", wrapper_path)
    assert spec is not None and spec.loader is not None
    wrapper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wrapper)
    wrapper.init()
    wrapper.set_logger_callback(log.append)
    model = wrapper.TfliteMicroModelWrapper()
    if not model.load(tflite_bytes, None, False, False, False, False, [arena_size]):
        _send(replies, ("error", log_text(log)))
        return
    _send(replies, ("ready", model.get_output_size()))
    while True:
        try:
            request = _receive(requests)
        except EOFError:
            return
        if request is None:
            return
        outputs = []
        for sample in request:
            log.clear()
            np.copyto(model.get_input(0), sample.reshape(model.get_input(0).shape))
            if not model.invoke():
                _send(replies, ("error", log_text(log)))
                break
            outputs.append([np.array(model.get_output(i)) for i in range(model.get_output_size())])
        else:
            _send(replies, ("outputs", outputs))


class SilabsTflmProcess:
    """One model loaded in Silicon Labs' TFLM, in a child process; `run(batch)` -> outputs per sample."""

    def __init__(
        self, tflite_bytes: bytes, arena_size: int | None = None, *, source: str = "<bytes>"
    ) -> None:
        path = find_mltk_file(*_WRAPPER[0], pattern=_WRAPPER[1])
        if path is None:
            raise SilabsTflmError(
                "backend 'silabs-tflm' needs Silicon Labs' compiled TFLM from the MLTK wheel "
                f"({INSTALL_HINT})"
            )
        self.source = source
        hybrid = hybrid_layers(bytes(tflite_bytes))
        if hybrid:
            raise SilabsTflmError(f"{source}: Silicon Labs' TFLM cannot run {hybrid_message(hybrid)}")
        argv, environment = child_command("microspeech.tflite.silabs_tflm")
        self._process = subprocess.Popen(
            argv,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=CHILD_SESSION,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests, self._replies = self._process.stdin, self._process.stdout
        _send(self._requests, (str(path), bytes(tflite_bytes), int(arena_size or 0)))
        status, detail = self._reply()
        if status != "ready":
            self.close()
            raise SilabsTflmError(f"{source}: Silicon Labs' TFLM could not load the model: {detail}")
        self.output_count = int(detail)

    def _reply(self) -> tuple[str, Any]:
        try:
            return _receive(self._replies)
        except EOFError as error:
            raise SilabsTflmError(
                f"{self.source}: Silicon Labs' TFLM process ended (exit code {self._process.poll()})"
            ) from error

    def run(self, samples: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Every output tensor of every sample (int8 arrays shaped as the wrapper returns them)."""
        self.submit(samples)
        return self.collect()

    def submit(self, samples: list[np.ndarray]) -> None:
        """Send a batch without waiting: the child computes it while the caller does other work
        (another child's batch); `collect` gives its outputs."""
        _send(self._requests, list(samples))

    def collect(self) -> list[list[np.ndarray]]:
        """The outputs of the batch `submit` sent last."""
        status, detail = self._reply()
        if status != "outputs":
            raise SilabsTflmError(f"{self.source}: Silicon Labs' TFLM invoke failed: {detail}")
        return detail

    def kill(self) -> None:
        """End the child at once (it may be computing or holding an unread reply)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for stream in (self._requests, self._replies):
            try:
                stream.close()
            except OSError:
                pass

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                _send(self._requests, None)
            except (BrokenPipeError, OSError):
                pass
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._requests, self._replies):
            stream.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: nothing left to clean)
            pass


if __name__ == "__main__":
    replies = protocol_stdout()
    _serve(sys.stdin.buffer, replies)
