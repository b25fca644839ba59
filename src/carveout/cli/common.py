"""Options and error handling every command shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carveout.core import CarveoutError, settings

if TYPE_CHECKING:
    from carveout.cells import Cell, Deployment

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data directory [env CARVEOUT_DATA; default ./data]"),
]

DatasetsOpt = Annotated[
    Path | None,
    typer.Option(
        "--datasets",
        envvar=settings.DATASETS_ENV,
        help="Folder of the public datasets. (default: ../shared/data beside the checkout)",
        show_default=False,
    ),
]


@contextmanager
def fail_on_errors() -> Iterator[None]:
    """A CarveoutError becomes one line on stderr and exit code 1, never a traceback."""
    try:
        yield
    except CarveoutError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@contextmanager
def open_deployment(data_dir: Path | None) -> Iterator[Deployment]:
    """Every cell of the data directory, closed however the command ends (an error halfway
    must not leave a PostgreSQL pool or a SQLite handle open behind the message)."""
    # Imported here: `carveout --help` and the commands that need no cell stay fast.
    from carveout.cells import Deployment
    from carveout.core.settings import data_dir as resolve

    deployment = Deployment.open(resolve(data_dir))
    try:
        yield deployment
    finally:
        deployment.close()


@contextmanager
def open_cell(data_dir: Path | None, name: str) -> Iterator[Cell]:
    """One cell of the data directory, by the name the residency policy gives it."""
    with open_deployment(data_dir) as deployment:
        yield deployment.cell(name)


def chosen_cells(deployment: Deployment, name: str | None) -> list[Cell]:
    """The named cell, or every cell of the policy when no name is given."""
    return [deployment.cell(name)] if name else deployment.cells()
