"""Stop requests from outside (Ctrl-C, `kill`): every command ends the same clean way.

The CLI routes SIGINT and SIGTERM through `install`: either raises KeyboardInterrupt in the main
thread, so `finally` blocks and atomic writes remove their temporary files, and `kill` ends a run
as Ctrl-C does (train.log says why, the exit status is 128 + the signal) instead of killing the
process mid-write. `received` stays set even when a library (TensorFlow tracing a graph) turns
the KeyboardInterrupt into an error of its own.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["deferred", "exit_status", "install", "raise_if_received", "received", "restore"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[signal.Signals] = []


def install() -> dict[signal.Signals, Any]:
    """Route SIGINT and SIGTERM to `_stop` (the main thread only: Python delivers signals there),
    except one the process was started to ignore (`command &` in a script ignores SIGINT); returns
    the handlers replaced, for `restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    _received.clear()  # a new command: an earlier one's stop (main() called again) is not this one's
    replaced = {}
    for number in STOP_SIGNALS:
        if signal.getsignal(number) is not signal.SIG_IGN:
            replaced[number] = signal.signal(number, _stop)
    return replaced


def restore(replaced: dict[signal.Signals, Any]) -> None:
    """Put back the handlers `install` replaced (a caller that goes on running Python: tests)."""
    for number, handler in replaced.items():
        signal.signal(number, handler)


def _stop(number: int, frame: FrameType | None) -> None:
    received_before = bool(_received)
    _received.append(signal.Signals(number))
    if received_before:
        # A second stop: the first is waiting on native code (a numba kernel, a TensorFlow op) that
        # never returns to Python, or on its cleanup. End now, as the signal would by default.
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        return
    if _deferring:
        return  # raised when the deferring block ends
    raise KeyboardInterrupt(signal.Signals(number).name)


_deferring = 0


@contextmanager
def deferred() -> Iterator[None]:
    """A block a stop does not cut short (the renames that publish a set of files together): a
    stop received inside it raises KeyboardInterrupt when it ends."""
    global _deferring
    before = len(_received)
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring and len(_received) > before:
        raise KeyboardInterrupt(_received[before].name)


def raise_if_received() -> None:
    """KeyboardInterrupt for a stop a library swallowed (a worker thread, a traced graph, the TFLite
    converter, which returns its model as if no Ctrl-C came): what follows does not run on."""
    if _received:
        raise KeyboardInterrupt(_received[0].name)


def received() -> str | None:
    """The name of the first stop signal received (SIGINT, SIGTERM), else None."""
    return _received[0].name if _received else None


def exit_status() -> int:
    """128 + the first stop signal's number, as a shell reports a process that signal ended (130
    for Ctrl-C); 130 when none was recorded (a KeyboardInterrupt raised otherwise)."""
    return 128 + int(_received[0] if _received else signal.SIGINT)
