"""`carveout staff`: grant, revoke and list a cell's staff roles; verify its access log.

Operators act with host access to the data directory, which is their authority here; every
grant records who made it (`--by`, default the operating-system user)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from carveout.cli.common import DataDirOpt, fail_on_errors, open_cell

staff_app = typer.Typer(
    help="Staff roles of a cell (moderator, privacy_officer, operator, auditor) and its "
    "hash-chained access log.",
    no_args_is_help=True,
)

CellOpt = Annotated[str, typer.Option("--cell", help="the cell, as the residency policy names it")]
UserOpt = Annotated[str, typer.Option("--user", help="the staff member's account id in the cell")]
RoleOpt = Annotated[
    str, typer.Option("--role", help="moderator | privacy_officer | operator | auditor")
]


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "operator"


@staff_app.command("grant")
def grant_command(
    cell: CellOpt,
    user: UserOpt,
    role: RoleOpt,
    by: Annotated[
        str | None, typer.Option("--by", help="who grants it [default: the OS user]")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Give an account of the cell a staff role (valid in that cell only)."""
    from carveout.accounts import staff

    with fail_on_errors(), open_cell(data_dir, cell) as target:
        made, new = staff.grant(target, user, role, by or _operator())
    state = "granted" if new else "already held"
    typer.echo(f"{state}: {made.role} to {made.user_id} in cell {cell} (by {made.granted_by})")


@staff_app.command("revoke")
def revoke_command(
    cell: CellOpt, user: UserOpt, role: RoleOpt, data_dir: DataDirOpt = None
) -> None:
    """Take a staff role away; effective at the user's next request."""
    from carveout.accounts import staff

    with fail_on_errors(), open_cell(data_dir, cell) as target:
        gone = staff.revoke(target, user, role)
    if not gone:
        typer.echo(f"{user} does not hold {role} in cell {cell}: nothing to revoke")
        return
    typer.echo(f"revoked: {role} from {user} in cell {cell}")


@staff_app.command("list")
def list_command(
    cell: CellOpt,
    user: Annotated[str | None, typer.Option("--user", help="only this account")] = None,
    role: Annotated[str | None, typer.Option("--role", help="only this role")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The cell's staff roles: account, role, who granted it and when (Unix ms)."""
    from carveout.accounts import staff

    with fail_on_errors(), open_cell(data_dir, cell) as target:
        found = staff.grants(target, user, role)
    if not found:
        typer.echo(f"no staff roles in cell {cell}")
    for g in found:
        typer.echo(f"{g.user_id}  {g.role:<15}  granted by {g.granted_by} at {g.created_at}")


@staff_app.command("verify-log")
def verify_log_command(cell: CellOpt, data_dir: DataDirOpt = None) -> None:
    """Check every jurisdiction's hash chain of the cell's access log; exit 1 at a break."""
    from carveout.accounts import chain_heads, verify_chain

    with fail_on_errors(), open_cell(data_dir, cell) as target:
        problems = verify_chain(target.store)
        heads = chain_heads(target.store)
    if problems:
        typer.echo(f"access log of cell {cell} is BROKEN at {problems[0]}", err=True)
        for p in problems[1:]:
            typer.echo(f"  also: {p}", err=True)
        raise typer.Exit(1)
    typer.echo(f"access log of cell {cell}: {len(heads)} chain(s) intact")
    # The heads are the anchors: recorded elsewhere, they also expose a truncated tail later.
    for h in heads:
        typer.echo(f"  {h.domicile}: {h.seq} entries, head {h.hash}")
