"""What every `carveout bench` command shares: options, progress bars, SIGTERM handling."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from carveout.cli.common import DatasetsOpt
from carveout.core import CarveoutError

__all__ = ["Bars", "DatasetsOpt", "MarkdownOpt", "bench_bars", "exit_on_sigterm"]

MarkdownOpt = Annotated[bool, typer.Option("--markdown", help="Also print the table as Markdown.")]


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks stop every server the bench started."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # KeyboardInterrupt, not SIGINT re-sent: a background job may ignore SIGINT. (During
        # a load, the load generator takes SIGTERM over and stops its workers first.)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Bars:
    """One Rich bar per bench step, created when the step first reports."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, step: str, done: float, total: float, detail: str = "") -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        description = f"{step} [dim]{detail}[/]" if detail else step
        self.progress.update(self.tasks[step], completed=done, total=total, description=description)


@contextmanager
def bench_bars(
    refresh_per_second: float = 10,
    errors: tuple[type[Exception], ...] = (CarveoutError,),
) -> Iterator[Bars]:
    """A bench run's Rich bars on stderr, SIGTERM unwinding like Ctrl-C, and `errors` raised
    inside turned into one line on stderr and exit code 1 (no traceback)."""
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        with (
            exit_on_sigterm(),
            Progress(
                *columns, console=Console(stderr=True), refresh_per_second=refresh_per_second
            ) as progress,
        ):
            yield Bars(progress)
    except errors as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
