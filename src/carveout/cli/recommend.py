"""`carveout recommend train`: retrain a cell's recommender from that cell's own data."""

from __future__ import annotations

from typing import Annotated

import typer

from carveout.cli.common import DataDirOpt, fail_on_errors, open_deployment

recommend_app = typer.Typer(help="The For You recommender of each cell.")


@recommend_app.command()
def train(
    data_dir: DataDirOpt = None,
    cell: Annotated[
        str | None, typer.Option(help="the cell to retrain (default: every cell)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the validation split used for tuning")] = 0,
) -> None:
    """Train the cell's model on its own events only; the lineage manifest says which."""
    from carveout.recommend import train_cell

    with fail_on_errors(), open_deployment(data_dir) as deployment:
        names = [cell] if cell else list(deployment.policy.names)
        for name in names:
            manifest = train_cell(deployment.cell(name), seed=seed)
            rows = ", ".join(f"{k} {v:,}" for k, v in sorted(manifest.rows.items()))
            served = ", ".join(manifest.jurisdictions) or "-"
            typer.echo(f"cell {name}: model {manifest.version} trained on {served} ({rows})")
