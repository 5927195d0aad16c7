"""Ctrl-C and kill as one clean stop (`microspeech.stopping`), in processes of their own."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_stop_raises_keyboard_interrupt_and_is_remembered():
    done = _run(
        "import os, signal\n"
        "from microspeech import stopping\n"
        "stopping.install()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "except KeyboardInterrupt:\n"
        "    print(stopping.received(), stopping.exit_status())\n"
    )
    assert done.stdout == "SIGTERM 143\n", done.stderr


def test_a_second_stop_ends_the_process_at_once():
    # The first stop waits on native code or a cleanup that never returns to Python: `kill` again
    # must still end it, as it did before stops became KeyboardInterrupts.
    done = _run(
        "import os, signal\n"
        "from microspeech import stopping\n"
        "stopping.install()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "except KeyboardInterrupt:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    print('still running')\n"
    )
    assert done.returncode == -15 and "still running" not in done.stdout


def test_a_signal_the_process_was_told_to_ignore_stays_ignored():
    # `command &` in a script starts it with SIGINT ignored; the terminal's Ctrl-C ended it anyway.
    done = _run(
        "import signal\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "from microspeech import stopping\n"
        "replaced = stopping.install()\n"
        "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, sorted(s.name for s in replaced))\n"
        "stopping.restore(replaced)\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
    )
    assert done.stdout == "True ['SIGTERM']\nTrue\n", done.stderr


def test_a_stop_during_the_renames_of_a_set_of_files_waits_for_the_last(tmp_path):
    # A stop between two renames of write_files_atomic published half a set (new results beside
    # old plots): the stop now lands when the renames are done.
    done = _run(
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from microspeech import files, stopping\n"
        "stopping.install()\n"
        "real, calls = os.replace, []\n"
        "def replace(a, b):\n"
        "    real(a, b)\n"
        "    calls.append(b)\n"
        "    if len(calls) == 1:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # after the first rename\n"
        "os.replace = replace\n"
        f"folder = Path({str(tmp_path)!r})\n"
        "try:\n"
        "    files.write_files_atomic({folder / 'a.txt': b'a', folder / 'b.txt': b'b'})\n"
        "except KeyboardInterrupt:\n"
        "    print(sorted(p.name for p in folder.iterdir()))\n"
    )
    assert done.stdout == "['a.txt', 'b.txt']\n", done.stderr
