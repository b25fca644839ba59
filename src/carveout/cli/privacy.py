"""`carveout privacy`: erasure on a verified request, resuming interrupted erasures,
retention, and the byte-level scan."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.console import Console

from carveout.cli.common import (
    DataDirOpt,
    chosen_cells,
    fail_on_errors,
    open_cell,
    open_deployment,
)

privacy_app = typer.Typer(
    help="User data management: erasure, retention, byte-level checks.", no_args_is_help=True
)
CellOpt = Annotated[
    str | None, typer.Option("--cell", help="one cell (default: every cell of the policy)")
]


@privacy_app.command("erase")
def erase(
    user: Annotated[str, typer.Option("--user", help="the user id to erase")],
    purpose: Annotated[
        str, typer.Option("--purpose", help="the verified request this fulfils (kept on record)")
    ],
    cell: Annotated[str, typer.Option("--cell", help="the cell holding the user")],
    data_dir: DataDirOpt = None,
) -> None:
    """Erase a user on a verified request (a privacy officer at the machine); prints the
    receipt as JSON. An interrupted run is finished by `carveout privacy resume`."""
    from carveout import privacy
    from carveout.core import InvalidInput

    with fail_on_errors():
        if not purpose.strip():
            raise InvalidInput("--purpose must say which verified request this fulfils")
        with open_cell(data_dir, cell) as found:
            receipt = privacy.erase(found, user, f"cli:{getpass.getuser()}", purpose.strip())
    typer.echo(json.dumps(receipt.to_json(), indent=1))


@privacy_app.command("resume")
def resume(cell: CellOpt = None, data_dir: DataDirOpt = None) -> None:
    """Finish erasures a crash interrupted (`carveout serve` also does this when it starts)."""
    from carveout import privacy

    console = Console()
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        for c in chosen_cells(deployment, cell):
            for receipt in privacy.resume_erasures(c):
                console.print(f"{c.name}: erasure {receipt.request_id} finished")


@privacy_app.command("retention")
def retention(cell: CellOpt = None, data_dir: DataDirOpt = None) -> None:
    """Delete what the data map's retention periods say has expired (raw events after 365
    days, sessions 30 days after expiry, export archives after 7 days)."""
    from carveout.privacy.retention import enforce

    console = Console()
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        for c in chosen_cells(deployment, cell):
            report = enforce(c)
            rows = ", ".join(f"{t} {n:,}" for t, n in report.deleted.items())
            console.print(f"{c.name}: deleted {rows}; export archives {report.export_files}")


@privacy_app.command("scan")
def scan(
    texts: Annotated[list[str], typer.Argument(help="strings that must not appear")],
    cell: Annotated[str, typer.Option("--cell", help="the cell whose files to scan")],
    data_dir: DataDirOpt = None,
) -> None:
    """Look for strings in every file of a cell (database, WAL, blobs, exports, key store),
    as UTF-8 and UTF-16, inside zip members too. Exit 1 if any is found."""
    from carveout.privacy.scan import cell_paths
    from carveout.privacy.scan import scan as find

    with fail_on_errors(), open_deployment(data_dir) as deployment:
        found = deployment.cell(cell)
        hits = find(cell_paths(found, deployment.data_dir), texts)
    for hit in hits:
        typer.echo(f"found {hit.needle!r} in {hit.path} at byte {hit.offset}")
    if hits:
        raise typer.Exit(1)
    typer.echo(f"none of {len(texts)} string(s) found in cell {cell!r}")
