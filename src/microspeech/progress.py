"""Progress bars for library code: on stderr, only on a terminal, gone when done."""

from __future__ import annotations

from typing import Any

__all__ = ["NullProgress", "progress_bar"]

LOG_WIDTH = 160  # the columns of a bar drawn into a log or a pipe


def progress_bar(
    enabled: bool = True,
    *,
    kind: str = "percent",
    console: Any = None,
    transient: bool = True,
    only_on_terminal: bool = True,
) -> Any:
    """The one progress-bar factory for library code: a rich Progress, or a no-op when not `enabled`.

    Kinds (the columns after the description and the bar):
    - "percent": percentage and time left (the default);
    - "count": done / total and time elapsed (clips, inferences);
    - "count-eta": done / total, time elapsed and time left (long batch jobs);
    - "bytes": bytes done / total, speed and time left (downloads, extraction);
    - "stats": a `stats` task field (epoch metrics) and time elapsed, a narrow bar (training).
    Bars go to stderr (or `console`) and, with `only_on_terminal`, are drawn only on a terminal:
    no residue in logs and pipes.
    """
    if not enabled:
        return NullProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    tails = {
        "percent": (TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn()),
        "count": (MofNCompleteColumn(), TimeElapsedColumn()),
        "count-eta": (MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()),
        "bytes": (DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()),
        "stats": (TextColumn("{task.fields[stats]}"), TimeElapsedColumn()),
    }
    if kind not in tails:
        raise ValueError(f"progress kind {kind!r}: expected one of {', '.join(tails)}")
    console = console or Console(stderr=True)
    if not only_on_terminal and not console.is_terminal:
        # A log or a pipe has no width: rich's 80 columns cut the end of each line (the time).
        console = Console(file=console.file, width=max(console.width, LOG_WIDTH), no_color=console.no_color)
    # Narrow for the training stats, which must fit an 80-column terminal.
    bar = BarColumn(bar_width=10) if kind == "stats" else BarColumn()
    return Progress(
        TextColumn("[bold]{task.description}"),
        bar,
        *tails[kind],
        console=console,
        transient=transient,
        disable=only_on_terminal and not console.is_terminal,
    )


class NullProgress:
    """Progress's interface, doing nothing (quiet runs, tests)."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None

    def advance(self, *args: Any, **kwargs: Any) -> None:
        return None

    def remove_task(self, *args: Any, **kwargs: Any) -> None:
        return None

    def open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
        return open(path, mode)
