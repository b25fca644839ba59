"""`carveout`: init, serve, status, load, staff, bench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carveout.cli.backup import backup_app
from carveout.cli.bench import bench_app
from carveout.cli.carve import carve_app
from carveout.cli.common import DataDirOpt, fail_on_errors
from carveout.cli.demo import demo_command
from carveout.cli.exchange import exchange_app
from carveout.cli.load import load_app
from carveout.cli.moderation import moderation_app
from carveout.cli.privacy import privacy_app
from carveout.cli.recommend import recommend_app
from carveout.cli.staff import staff_app
from carveout.cli.status import status_command

app = typer.Typer(
    help="carveout: a short-video backend whose every record knows its jurisdiction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(load_app, name="load", help="Import a real dataset into the cells.")
app.add_typer(recommend_app, name="recommend", help="Train each cell's recommender.")
app.add_typer(backup_app, name="backup", help="Backups at each cell's designated backup site.")
app.add_typer(carve_app, name="carve", help="Carve jurisdictions out into a new cell.")
app.add_typer(exchange_app, name="exchange", help="Guest content between cells; its log.")
app.add_typer(moderation_app, name="moderation", help="Hash banks, text classifier, review.")
app.add_typer(privacy_app, name="privacy", help="Erasure, retention, byte-level checks.")
app.add_typer(staff_app, name="staff", help="Staff roles of a cell and its access log.")
app.add_typer(bench_app, name="bench", help="Benchmarks against the baseline a user would pick.")
app.command("demo", help="The whole story on real data: load, serve, carve live, verify.")(
    demo_command
)
app.command("status", help="Cells, jurisdictions, and row counts per table and domicile.")(
    status_command
)


@app.command()
def init(
    data_dir: DataDirOpt = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="residency policy (TOML) to install; default: one `global` cell"),
    ] = None,
) -> None:
    """Create the data directory, its residency policy and every cell's store."""
    from carveout.cells import POLICY_FILE, init_data_dir
    from carveout.core.settings import data_dir as resolve

    root = resolve(data_dir)
    with fail_on_errors():
        text = policy.read_text(encoding="utf-8") if policy is not None else None
        deployment = init_data_dir(root, text)
        names = ", ".join(deployment.policy.names)
        deployment.close()
    typer.echo(f"data directory {root} ready (policy {root / POLICY_FILE}; cells: {names})")


@app.command()
def serve(
    data_dir: DataDirOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) for every cell of the data directory."""
    import os

    import uvicorn

    from carveout.core.settings import DATA_ENV
    from carveout.core.settings import data_dir as resolve

    root = resolve(data_dir)
    with fail_on_errors():
        from carveout.cells import Deployment

        deployment = Deployment.open(root)  # fail fast on a missing or bad policy
        for cell in deployment.cells():
            cell.store.analyze()
        deployment.close()
    os.environ[DATA_ENV] = str(root)
    typer.echo(f"serving {root} on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "carveout.api.server:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


if __name__ == "__main__":
    app()
