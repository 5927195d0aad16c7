"""Stop requests from outside (Ctrl-C, `kill`): every command ends the same clean way.

The CLI routes SIGINT and SIGTERM through `install`: either raises KeyboardInterrupt in the main
thread, so `finally` blocks and atomic writes remove their temporary files, and `kill` ends a run
as Ctrl-C does (train.log says why, the exit status is 128 + the signal) instead of killing the
process mid-write. `received` stays set even when a library (TensorFlow tracing a graph) turns
the KeyboardInterrupt into an error of its own.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["exit_status", "install", "received"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[signal.Signals] = []


def install() -> None:
    """Route SIGINT and SIGTERM to `_stop` (the main thread only: Python delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in STOP_SIGNALS:
        signal.signal(number, _stop)


def _stop(number: int, frame: FrameType | None) -> None:
    _received.append(signal.Signals(number))
    raise KeyboardInterrupt(signal.Signals(number).name)


def received() -> str | None:
    """The name of the first stop signal received (SIGINT, SIGTERM), else None."""
    return _received[0].name if _received else None


def exit_status() -> int:
    """128 + the first stop signal's number, as a shell reports a process that signal ended (130
    for Ctrl-C); 130 when none was recorded (a KeyboardInterrupt raised otherwise)."""
    return 128 + int(_received[0] if _received else signal.SIGINT)
