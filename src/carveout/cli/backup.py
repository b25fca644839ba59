"""`carveout backup`: run, verify, restore and list backups at each cell's backup site."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from carveout.cli.common import DataDirOpt, fail_on_errors

if TYPE_CHECKING:
    from carveout.cells import Policy

backup_app = typer.Typer(
    help="Backups of each cell, only at the backup site its residency policy names.",
    no_args_is_help=True,
)

CellOpt = Annotated[str, typer.Option("--cell", help="the cell, as the residency policy names it")]


def _age(ms: int) -> str:
    from carveout.core import now_ms

    seconds = max(0, (now_ms() - ms) // 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _policy(data_dir: Path | None) -> tuple[Path, Policy]:
    from carveout.cells import POLICY_FILE, load_policy
    from carveout.core.settings import data_dir as resolve

    root = resolve(data_dir)
    return root, load_policy(root / POLICY_FILE)


def _pick(root: Path, policy: Policy, cell: str, backup: str | None) -> str:
    """The given backup id, or the cell's latest one at its backup site."""
    from carveout.backup import list_backups
    from carveout.core import NotFound

    if backup is not None:
        return backup
    found = list_backups(root, policy, cell)
    if not found:
        raise NotFound(f"cell {cell!r} has no backups at its backup site")
    return found[-1].backup_id


@backup_app.command("run")
def run(
    cell: CellOpt,
    site: Annotated[
        str | None,
        typer.Option(help="the site to write to; refused unless it is the cell's backup site"),
    ] = None,
    keep: Annotated[int, typer.Option(min=1, help="generations of this cell to keep")] = 7,
    data_dir: DataDirOpt = None,
) -> None:
    """Back up a cell while it serves: sealed, checksummed chunks and a signed manifest."""
    from carveout.backup import run_backup
    from carveout.cells import Deployment
    from carveout.core.settings import data_dir as resolve

    with fail_on_errors():
        deployment = Deployment.open(resolve(data_dir))
        try:
            result = run_backup(deployment, cell, site=site, keep=keep)
        finally:
            deployment.close()
    m = result.manifest
    rows = sum(t.rows for t in m.tables.values())
    typer.echo(
        f"backup {m.backup_id} of cell {m.cell} written to site {m.site} ({result.path}): "
        f"{rows} rows in {len(m.tables)} tables, {len(m.blobs)} blobs, "
        f"{m.logical_bytes / 1e6:.1f} MB in {len(m.chunks)} chunks of "
        f"{m.stored_bytes / 1e6:.1f} MB, {result.timings.total_s:.1f} s"
    )
    for removed in result.removed:
        typer.echo(f"removed old generation {removed} (keeping {keep})")


@backup_app.command("verify")
def verify(
    cell: CellOpt,
    backup: Annotated[str | None, typer.Option(help="backup id; default: the latest")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Restore a backup into a scratch cell and compare every table with its manifest."""
    from carveout.backup import verify_backup

    with fail_on_errors():
        root, policy = _policy(data_dir)
        backup_id = _pick(root, policy, cell, backup)
        result = verify_backup(root, policy, cell, backup_id)
    if not result.ok:
        for problem in result.problems:
            typer.echo(f"error: {problem}", err=True)
        typer.echo(f"backup {backup_id} of cell {cell}: verification FAILED", err=True)
        raise typer.Exit(1)
    rows = sum(t.rows for t in result.tables.values())
    typer.echo(
        f"backup {backup_id} of cell {cell} verified: {len(result.tables)} tables, {rows} rows "
        "match the manifest"
    )


@backup_app.command("restore")
def restore(
    cell: CellOpt,
    backup: Annotated[str, typer.Option(help="backup id (see `carveout backup list`)")],
    replace: Annotated[
        bool, typer.Option("--replace", help="replace the cell if it exists (stop serving it)")
    ] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Bring a cell back from a backup; the cell appears whole or not at all."""
    from carveout.backup import restore_backup

    with fail_on_errors():
        root, policy = _policy(data_dir)
        manifest = restore_backup(root, policy, cell, backup, replace=replace)
    rows = sum(t.rows for t in manifest.tables.values())
    typer.echo(
        f"cell {cell} restored from backup {backup}: {rows} rows and {len(manifest.blobs)} "
        "blobs, every table checked against the manifest"
    )


@backup_app.command("list")
def list_(
    cell: Annotated[str | None, typer.Option("--cell", help="only this cell")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Backups at each cell's backup site: size, age and verification status."""
    from carveout.backup import list_backups

    with fail_on_errors():
        root, policy = _policy(data_dir)
        found = list_backups(root, policy, cell)
    table = Table(title="backups")
    for name in ("backup", "cell", "site", "backend"):
        table.add_column(name)
    for name in ("rows", "data MB", "stored MB", "age"):
        table.add_column(name, justify="right")
    table.add_column("verified")
    for b in found:
        v = b.verification
        status = "never" if v is None else ("ok " if v.ok else "FAILED ") + _age(v.checked_at_ms)
        table.add_row(
            b.backup_id,
            b.cell,
            b.site,
            b.backend,
            f"{b.rows:,}",
            f"{b.logical_bytes / 1e6:,.1f}",
            f"{b.stored_bytes / 1e6:,.1f}",
            _age(b.created_at_ms),
            status,
        )
    console = Console() if Console().is_terminal else Console(width=140)
    console.print(table)
