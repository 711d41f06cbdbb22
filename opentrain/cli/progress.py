"""The rich progress bar the node and verifier commands show while segments train or re-run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

__all__ = ["segment_progress"]


@contextmanager
def segment_progress(console: Console, label: str) -> Iterator[Callable[[int, int], None]]:
    """A bar labelled ``label``; yields the ``progress(done, total)`` callback to report to."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress
