"""`carveout status`: what each cell serves and holds."""

from __future__ import annotations

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from carveout.cells import Deployment
from carveout.cli.common import DataDirOpt, fail_on_errors, open_deployment
from carveout.datamap import DATA_MAP, TABLES


def counts_by_domicile(deployment: Deployment) -> dict[str, dict[str, dict[str, int]]]:
    """cell -> table -> domicile -> rows."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for cell in deployment.cells():
        per_table: dict[str, dict[str, int]] = {}
        with cell.store.connect() as conn:
            for table in DATA_MAP.tables:
                t = TABLES[table.name]
                rows = conn.execute(
                    sa.select(t.c.domicile, sa.func.count()).group_by(t.c.domicile)
                ).all()
                per_table[table.name] = {r[0]: int(r[1]) for r in rows}
        out[cell.name] = per_table
    return out


def status_command(data_dir: DataDirOpt = None) -> None:
    """Cells, jurisdictions, and row counts per table and domicile."""
    console = Console()
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        counts = counts_by_domicile(deployment)
        for cell in deployment.cells():
            spec = cell.spec
            served = ", ".join(spec.jurisdictions) + (" + every other" if spec.serves_rest else "")
            console.print(
                f"[bold]cell {cell.name}[/bold]  serves: {served or '-'}  "
                f"primary site: {spec.primary_site}  backup site: {spec.backup_site or '-'}  "
                f"storage: {cell.store.backend} ({cell.store.url})  "
                f"schema: {cell.store.schema_version()}"
            )
            per_table = counts[cell.name]
            domiciles = sorted({d for t in per_table.values() for d in t})
            top = sorted(domiciles, key=lambda d: -sum(t.get(d, 0) for t in per_table.values()))[
                :12
            ]
            table = Table("table", "rows", *top, *(["other"] if len(domiciles) > 12 else []))
            for name, by_dom in per_table.items():
                total = sum(by_dom.values())
                other = total - sum(by_dom.get(d, 0) for d in top)
                row = [name, f"{total:,}", *(f"{by_dom.get(d, 0):,}" for d in top)]
                if len(domiciles) > 12:
                    row.append(f"{other:,}")
                table.add_row(*row)
            console.print(table)
