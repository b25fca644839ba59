"""Options and error handling every command shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from carveout.core import CarveoutError

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data directory [env CARVEOUT_DATA; default ./data]"),
]


@contextmanager
def fail_on_errors() -> Iterator[None]:
    """A CarveoutError becomes one line on stderr and exit code 1, never a traceback."""
    try:
        yield
    except CarveoutError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
