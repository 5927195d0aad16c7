"""A Python child process running one of our modules: its command and environment, and its stdout.

Silicon Labs' TFLM, the MVP simulator and TFLM's arena search each run in a child of their own
(a crash or a symbol clash stays there). `python -m` alone puts the current folder first on the
child's path, so a user's `numpy.py` or `signal.py` there would shadow the real one in the child
only, and a package the parent reached through its own `sys.path` would be missing: the child
gets the parent's path instead, as multiprocessing's spawn gave it, and `-P` keeps the current
folder off it.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

# A session of its own: a terminal's Ctrl-C goes to the parent alone, which ends its children
# (closing their request pipe, or killing one busy with a request), instead of each child printing
# a KeyboardInterrupt traceback of its own.
CHILD_SESSION = True


def child_command(module: str) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that run `python -m module` with this process's import path."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    return [sys.executable, "-P", "-m", module], environment


def protocol_stdout() -> BinaryIO:
    """In the child: the real stdout, kept for the protocol's replies; file descriptor 1 then
    points at stderr, so anything the C++ code prints cannot corrupt a reply."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return replies
