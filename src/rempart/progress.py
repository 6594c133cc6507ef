"""Rich progress bars driven by ``progress(step, done, total)`` callbacks of long work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["ProgressFn", "progress_bar"]

ProgressFn = Callable[[str, int, int], None]


@contextmanager
def progress_bar(console: Console, prefix: str = "") -> Iterator[ProgressFn]:
    """One bar per step name, created on the step's first callback."""
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:

        def update(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(f"{prefix}{step}", total=max(total, 1))
            bar.update(tasks[step], completed=done, total=max(total, 1))

        yield update
