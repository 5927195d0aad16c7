"""Progress bars for library code: on stderr, only on a terminal, gone when done."""

from __future__ import annotations

from typing import Any

__all__ = ["NullProgress", "progress_bar"]


def progress_bar(enabled: bool = True) -> Any:
    """A rich Progress (description, bar, percentage, time left), or a no-op when not `enabled`."""
    if not enabled:
        return NullProgress()
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no bar residue in logs and pipes
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
