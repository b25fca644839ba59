"""STEP 9 purge: remove J from the source — rows, blobs, capture log — and recompute aggregates."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field

import sqlalchemy as sa

from carveout.carve.capture import allow_purge, install_seal, remove_triggers
from carveout.carve.ddl import prefer_to_lose, retrying
from carveout.cells import Cell
from carveout.core import now_ms
from carveout.datamap import DATA_MAP, TABLES
from carveout.events import recompute_all


@dataclass
class PurgeReport:
    rows: dict[str, int] = field(default_factory=dict)
    blob_files: int = 0
    models: list[str] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)
    user_keys: int = 0  # J's user keys destroyed: J's rows in older backups become unreadable

    @property
    def remaining_rows(self) -> int:
        return sum(self.remaining.values())


def purge(source: Cell, codes: tuple[str, ...], target: str) -> PurgeReport:
    report = PurgeReport()

    def delete_j() -> None:
        with source.store.begin() as conn:
            prefer_to_lose(conn)
            if conn.dialect.name == "sqlite":
                # The seal would refuse these deletes; it is put back in the same transaction,
                # so no write of J can land in between.
                remove_triggers(conn, capture=True, seal=True)
            else:
                remove_triggers(conn, capture=True, seal=False)
                allow_purge(conn)
            for table in reversed(DATA_MAP.tables):
                tbl = TABLES[table.name]
                report.rows[table.name] = conn.execute(
                    sa.delete(tbl).where(tbl.c.domicile.in_(codes))
                ).rowcount
            conn.execute(sa.delete(TABLES["carve_changes"]))
            if conn.dialect.name == "sqlite":
                install_seal(conn, codes, target)

    retrying(delete_j)
    # Counters of staying videos still include J's views: rebuild them from what is left.
    recompute_all(source.store, now_ms())
    with source.store.connect() as conn:
        keep = {r[0] for r in conn.execute(sa.select(TABLES["blobs"].c.sha256))}
        for table in DATA_MAP.tables:
            tbl = TABLES[table.name]
            report.remaining[table.name] = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(tbl).where(tbl.c.domicile.in_(codes))
                ).scalar_one()
            )
    for sha in list(source.blobs.list()):
        if sha not in keep:
            source.blobs.delete(sha)
            report.blob_files += 1
    source.store.analyze()
    return report


def purge_models(source: Cell, codes: tuple[str, ...]) -> list[str]:
    """Delete the source's model versions whose lineage includes a carved jurisdiction."""
    models = source.root / "models"
    removed: list[str] = []
    if not models.is_dir():
        return removed
    for version in sorted(p for p in models.iterdir() if p.is_dir()):
        try:
            lineage = set(json.loads((version / "manifest.json").read_text())["jurisdictions"])
        except (OSError, ValueError, KeyError):
            lineage = set(codes)  # unreadable lineage: assume the worst
        if lineage & set(codes):
            shutil.rmtree(version)
            removed.append(version.name)
    return removed
