"""Rich progress bars driven by ``progress(step, done, total)`` callbacks of long work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["ProgressFn", "progress_bar"]

ProgressFn = Callable[[str, int, int], None]


class RateColumn(ProgressColumn):
    """Items per second over Rich's recent window (``—`` until it has one)."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("—/s" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")


@contextmanager
def progress_bar(
    console: Console, prefix: str = "", *, rates: bool = False
) -> Iterator[ProgressFn]:
    """One bar per step name, created on the step's first callback; ``rates`` adds the
    rate and the time left (long work whose pace matters, such as a campaign's sending)."""
    tasks: dict[str, TaskID] = {}
    columns: list[ProgressColumn] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
    ]
    if rates:
        columns += [RateColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console) as bar:

        def update(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(f"{prefix}{step}", total=max(total, 1))
            bar.update(tasks[step], completed=done, total=max(total, 1))

        yield update
