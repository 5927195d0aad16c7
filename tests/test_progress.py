"""The progress-bar factory: drawn only where it should be, and whole when it goes to a log."""

from __future__ import annotations

import io

from rich.console import Console

from microspeech.progress import NullProgress, progress_bar


def _drawn(stats: str, **options: object) -> str:
    log = io.StringIO()
    console = Console(file=log, force_terminal=False, width=80)
    with progress_bar(kind="stats", console=console, **options) as bars:
        task = bars.add_task("epoch 1/90", total=10, stats="")
        bars.update(task, completed=10, stats=stats)
    return log.getvalue()


def test_a_bar_kept_in_a_log_is_not_cut_at_80_columns():
    # train's epoch lines, piped into a log, lost their end (the elapsed time) at 80 columns.
    stats = "12,345 samples/s  loss 0.8615  acc 0.822  val_acc 0.893  stream 0.474"
    drawn = _drawn(stats, transient=False, only_on_terminal=False)
    line = next(line for line in drawn.splitlines() if "epoch 1/90" in line)
    assert stats in line and line.rstrip().endswith("0:00:00")
    assert len(line.rstrip()) > 80


def test_a_bar_for_the_terminal_only_leaves_nothing_in_a_log():
    assert _drawn("loss 1.0") == ""


def test_a_disabled_bar_is_the_null_progress():
    assert isinstance(progress_bar(False), NullProgress)
