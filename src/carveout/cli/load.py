"""`carveout load`: import public datasets into the cells of a deployment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from carveout.cells import POLICY_FILE, Deployment
from carveout.cli.common import DataDirOpt, DatasetsOpt, fail_on_errors
from carveout.core import NotFound, settings
from carveout.datasets import LoadReport, load_kuairec

load_app = typer.Typer(
    help="Import public datasets (KuaiRec) into the cells of a deployment.",
    no_args_is_help=True,
)

STAGES = {
    "read": "read and plan",
    "users": "users",
    "blobs": "blobs",
    "videos": "videos",
    "events": "events",
    "likes": "likes",
    "video_stats": "video_stats",
}
TABLE_COLUMNS = ("users", "videos", "blobs", "events", "likes")
CITATION = (
    "Data: KuaiRec (Gao et al., CIKM 2022) and KuaiRand, CC BY-SA 4.0; sample media from "
    "facebook/ThreatExchange, BSD. Countries, creators, durations, media and times are "
    "assigned by seeded rules (docs/datasets.md)."
)

KUAIREC_HELP = (
    "Load the real KuaiRec users, videos and watch events into the cells of a deployment."
    "\n\n"
    "Every user gets a jurisdiction by a seeded rule, and each row goes to the cell that "
    "serves its domicile. Needs KuaiRec (https://kuairec.com), KuaiRand "
    "(https://kuairand.com) and the ThreatExchange sample videos "
    "(https://github.com/facebook/ThreatExchange) in the datasets folder."
)


@contextmanager
def _progress_bars(console: Console) -> Iterator[Progress]:
    columns = (
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
    )
    with Progress(*columns, console=console) as bars:
        yield bars


def _open(data_dir: Path) -> Deployment:
    if not (data_dir / POLICY_FILE).is_file():
        raise NotFound(
            f"no deployment in {data_dir}: its residency policy {POLICY_FILE} is missing; "
            "create the data directory with `carveout init` first"
        )
    return Deployment.open(data_dir)


def _summary(report: LoadReport) -> Table:
    table = Table(title="KuaiRec rows loaded, per domicile")
    table.add_column("domicile")
    table.add_column("cell")
    for name in TABLE_COLUMNS:
        table.add_column(name, justify="right")
    domiciles = sorted(set().union(*(report.rows.get(t, {}) for t in TABLE_COLUMNS)))
    for code in domiciles:
        table.add_row(
            code,
            report.cell_of.get(code, ""),
            *(f"{report.rows.get(t, {}).get(code, 0):,}" for t in TABLE_COLUMNS),
        )
    table.add_section()
    table.add_row(
        "total",
        f"{len(report.cells)} cell(s)",
        *(f"{report.total(t):,}" for t in TABLE_COLUMNS),
        style="bold",
    )
    return table


@load_app.command("kuairec", help=KUAIREC_HELP)
def kuairec(
    data_dir: DataDirOpt = None,
    datasets: DatasetsOpt = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every assigned value.")] = 7,
    if_empty: Annotated[
        bool,
        typer.Option("--if-empty", help="Skip quietly if KuaiRec is already loaded."),
    ] = False,
) -> None:
    out = Console()
    err = Console(stderr=True)
    with fail_on_errors():
        deployment = _open(settings.data_dir(data_dir))
        try:
            with _progress_bars(err) as bars:
                tasks: dict[str, TaskID] = {}

                def progress(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bars.add_task(STAGES.get(stage, stage), total=total)
                    bars.update(tasks[stage], completed=done, total=total)

                report = load_kuairec(
                    deployment,
                    settings.datasets_dir(datasets),
                    seed=seed,
                    if_empty=if_empty,
                    progress=progress,
                )
        finally:
            deployment.close()
    if report.skipped:
        typer.echo(report.message)
        return
    out.print(_summary(report))
    day = datetime.fromtimestamp(report.reference_ms / 1000, UTC).date().isoformat()
    out.print(
        f"{report.total('events'):,} events in {len(report.cells)} cell(s) in "
        f"{report.seconds:.1f} s (seed {report.seed}; activity in the 30 days before {day} UTC; "
        f"{report.cross_cell_events:,} events reference a video in another cell).",
        highlight=False,
    )
    out.print(CITATION, style="dim", highlight=False)
