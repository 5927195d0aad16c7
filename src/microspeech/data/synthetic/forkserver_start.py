"""Imported by the render pool's forkserver only (its preload), never by the caller.

The forkserver hands every worker it forks the signal handlers it had once its preload was
imported. Ignoring Ctrl-C here makes each worker ignore it from its first instruction: set
later (in the pool initializer), a Ctrl-C that reaches the process group while a worker is
being born (one per batch) would print a stray "Process ForkServerProcess-N:" traceback.
The caller alone handles Ctrl-C and stops the pool.
"""

from __future__ import annotations

import signal

import microspeech.data.synthetic.generate  # noqa: F401  (loaded once, shared by every worker)

signal.signal(signal.SIGINT, signal.SIG_IGN)
