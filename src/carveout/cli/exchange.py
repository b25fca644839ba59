"""`carveout exchange`: copy guest content between cells the policy lets exchange; read the log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from carveout.cli.common import DataDirOpt, fail_on_errors

if TYPE_CHECKING:
    from carveout.cells import Deployment
    from carveout.exchange import SyncReport

exchange_app = typer.Typer(
    help="The content exchange: read-only, re-moderated guest copies of another cell's public "
    "videos, and the append-only log of every exchange.",
    no_args_is_help=True,
)

CellOpt = Annotated[str, typer.Option("--cell", help="the cell, as the residency policy names it")]


@contextmanager
def _deployment(data_dir: Path | None) -> Iterator[Deployment]:
    from carveout.cells import Deployment
    from carveout.core.settings import data_dir as resolve

    deployment = Deployment.open(resolve(data_dir))
    try:
        yield deployment
    finally:
        deployment.close()


def _print(report: SyncReport) -> None:
    copied = ", ".join(f"{n} {k}" for k, n in sorted(report.copied.items())) or "none"
    withdrawn = ", ".join(f"{n} {k}" for k, n in sorted(report.withdrawn.items())) or "none"
    typer.echo(
        f"exchange {report.origin} -> {report.receiver} (run {report.run_id}): "
        f"{report.offered} offered; copied: {copied} ({report.bytes:,} bytes); "
        f"kept {report.kept}; re-moderated {report.remoderated}; withdrawn: {withdrawn}"
    )
    for failure in report.failures:
        typer.echo(f"  failed: {failure}", err=True)


@exchange_app.command("sync")
def sync_command(
    origin: Annotated[
        str | None, typer.Option("--from", help="the cell whose public videos are offered")
    ] = None,
    receiver: Annotated[
        str | None, typer.Option("--to", help="the cell that receives guest copies")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every pair of cells the policy lets exchange")
    ] = False,
    referenced: Annotated[
        bool,
        typer.Option(
            "--referenced",
            help="only videos the receiver's users liked, commented on or watched (after a carve)",
        ),
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="copy at most this many new videos")
    ] = None,
    remoderate: Annotated[
        bool,
        typer.Option("--remoderate", help="screen the guest copies already held again too"),
    ] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Bring the receiver's guest copies up to date: withdraw what the origin no longer
    publishes, copy (and moderate with the receiver's own banks and rules) what is new. Refused
    before anything is written unless both cells have `content_exchange = true`."""
    from carveout import exchange
    from carveout.core import InvalidInput

    with fail_on_errors(), _deployment(data_dir) as deployment:
        if every:
            if origin or receiver:
                raise InvalidInput("give --all, or --from and --to, not both")
            reports = exchange.sync_all(deployment)
        else:
            if not origin or not receiver:
                raise InvalidInput("give --from and --to (or --all)")
            # Checked before either cell is opened: a refusal touches nothing.
            exchange.check_allowed(deployment.policy, origin, receiver)
            reports = [
                exchange.sync(
                    deployment.policy,
                    deployment.cell(origin),
                    deployment.cell(receiver),
                    only_referenced=referenced,
                    limit=limit,
                    remoderate_kept=remoderate,
                )
            ]
        for report in reports:
            _print(report)
    if any(not r.ok for r in reports):
        raise typer.Exit(1)


@exchange_app.command("log")
def log_command(
    cell: CellOpt,
    limit: Annotated[int, typer.Option("--limit", min=1, help="newest entries to show")] = 50,
    video: Annotated[str | None, typer.Option("--video", help="only this video's entries")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The cell's exchange log, newest first: what it sent or received, when, bytes, outcome."""
    from carveout import exchange

    with fail_on_errors(), _deployment(data_dir) as deployment:
        entries = exchange.read_log(deployment.cell(cell).store, limit=limit, video_id=video)
    for e in entries:
        at = datetime.fromtimestamp(e.created_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{e.seq:>6} {at} {e.direction:<8} {e.origin_cell} -> {e.receiving_cell} "
            f"{e.video_id} {e.action} {e.bytes:,} B: {e.outcome}"
        )
    if not entries:
        typer.echo(f"cell {cell}: no exchange logged")


@exchange_app.command("guests")
def guests_command(
    cell: CellOpt,
    origin: Annotated[str | None, typer.Option("--from", help="only copies from this cell")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The guest copies a cell holds: origin, the creator's public handle, its own outcome."""
    from carveout import exchange

    with fail_on_errors(), _deployment(data_dir) as deployment:
        held = exchange.guests(deployment.cell(cell), origin)
    for g in held:
        handle = g.creator_handle or "(erased)"
        typer.echo(
            f"{g.video_id} from {g.origin_cell} ({g.origin_domicile}) @{handle} "
            f"{g.visibility} {g.size_bytes:,} B"
        )
    typer.echo(f"{len(held)} guest videos in cell {cell}")
