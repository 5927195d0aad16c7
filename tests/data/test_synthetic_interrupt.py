"""`dataset synth` stopped by SIGKILL or Ctrl-C: no process outlives it, Ctrl-C prints one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.xdist_group("synthetic"),
    pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from /proc"),
]
SRC = str(Path(__file__).resolve().parents[2] / "src")
# Ctrl-C as a terminal delivers it, even when this test run ignores SIGINT: a non-interactive
# shell starts background jobs with SIGINT ignored, their children inherit that, and Python
# then installs no KeyboardInterrupt handler.
INTERRUPTIBLE = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _parents() -> dict[int, int]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            after_name = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if after_name[0] != "Z":  # a zombie has ended; only its exit status is left
            found[int(stat.parent.name)] = int(after_name[1])
    return found


def descendants(root: int) -> set[int]:
    parents = _parents()
    found, todo = set(), [root]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def wait_for_descendants(process: subprocess.Popen, count: int, timeout: float = 120.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        found = descendants(process.pid)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"fewer than {count} child processes after {timeout} s")


def survivors(pids: set[int], within: float) -> set[int]:
    deadline = time.monotonic() + within
    while True:
        alive = {pid for pid in pids if pid in _parents()}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MICROSPEECH_HOME": str(tmp_path), "PYTHONPATH": SRC}


def test_pool_workers_end_with_a_killed_caller(tmp_path):
    """Workers busy for minutes (and one waiting for work) end at once when the caller is SIGKILLed;
    then the forkserver and the resource tracker end too."""
    script = (
        "import time\n"
        "from microspeech.data.synthetic.generate import _pool\n"
        "pool = _pool(2)\n"
        "futures = [pool.submit(time.sleep, 600) for _ in range(2)]\n"
        "time.sleep(600)\n"
    )
    caller = subprocess.Popen([sys.executable, "-c", script], env=_environment(tmp_path))
    # the resource tracker, the forkserver and two workers
    children = wait_for_descendants(caller, 4)
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    left = survivors(children, within=10.0)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "processes outlived their SIGKILLed caller"


def test_pool_workers_ignore_ctrl_c_from_birth_and_the_caller_does_not(tmp_path):
    """A worker is born ignoring SIGINT (a Ctrl-C while one starts prints no child traceback);
    the caller keeps its KeyboardInterrupt."""
    script = (
        "import signal\n"
        "from microspeech.data.synthetic.generate import _pool\n"
        "with _pool(2) as pool:\n"
        "    in_workers = set(pool.map(signal.getsignal, [signal.SIGINT] * 4))\n"
        "caller = signal.getsignal(signal.SIGINT)\n"
        "print(in_workers == {signal.SIG_IGN}, caller is signal.default_int_handler)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTIBLE + script],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"], result.stdout


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_synth_command_stopped_leaves_no_process(tmp_path, stop):
    # Without INTERRUPTIBLE the command would go on rendering.
    command = [sys.executable, "-c", INTERRUPTIBLE + "from microspeech.cli import main; main()"]
    command += ["dataset", "synth"]
    # Enough work (tens of thousands of clips) that no machine finishes it before a second Ctrl-C.
    command += ["--preset", "synthetic-tiny", "--train-per-word", "2000", "--workers", "2", "--seed", "3"]
    # A session of its own: Ctrl-C in a terminal signals the whole foreground process group.
    synth = subprocess.Popen(
        command,
        env=_environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    children = wait_for_descendants(synth, 4)  # tracker, forkserver, workers
    if stop == signal.SIGKILL:
        synth.send_signal(stop)  # the command alone: its children are left to notice
    else:
        os.killpg(synth.pid, stop)
        try:  # as a user would, Ctrl-C once more if the first went unseen
            synth.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(synth.pid, stop)
    try:
        _, stderr = synth.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(synth.pid, signal.SIGKILL)
        raise
    left = survivors(children, within=10.0)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived `dataset synth` stopped by {stop.name}"
    if stop == signal.SIGINT:
        assert synth.returncode == 130, stderr
        assert "Traceback" not in stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "interrupted" in lines[0], stderr


def test_synth_runs_with_a_temporary_folder_too_long_for_a_socket(tmp_path):
    """The forkserver's socket lives in TMPDIR; past ~100 characters it cannot be bound."""
    long_tmp = tmp_path / ("t" * 90)
    long_tmp.mkdir()
    command = [sys.executable, "-c", "from microspeech.cli import main; main()", "dataset", "synth"]
    command += ["--preset", "synthetic-tiny", "--train-per-word", "1", "--validation-per-word", "1"]
    command += ["--test-per-word", "1", "--workers", "2", "--seed", "5"]
    result = subprocess.run(
        command,
        env={**_environment(tmp_path), "TMPDIR": str(long_tmp)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "AF_UNIX" not in result.stderr
