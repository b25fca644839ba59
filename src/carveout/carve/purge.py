"""STEP 9 purge: remove J from the source — rows, blobs, capture log — and recompute aggregates.

Rows of J that are parts of guest copies (the content exchange's copies of the carved cell's
videos, exchange.GUEST_PARTS) are not J's data left behind: they stay, and are not counted."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from carveout import exchange
from carveout.carve.capture import install_seal, purging, remove_triggers
from carveout.carve.ddl import prefer_to_lose, retrying
from carveout.carve.models import CarveSpec, carves_dir
from carveout.cells import Cell, Deployment
from carveout.core import now_ms
from carveout.datamap import DATA_MAP, TABLES
from carveout.events import recompute_in_steps


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


# Rows of one table deleted per purge transaction.
PURGE_STEP = 5_000
# SQLite has one writer: the serving cell's writers wait for each step, and their busy handler
# sleeps in growing steps (up to 100 ms) between tries, so back-to-back steps starve them.
# Smaller steps with a gap after each let them in.
SQLITE_PURGE_STEP = 1_000
SQLITE_GAP_S = 0.03


def of_j(table: str, codes: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """The table's rows of J in the source, guest copies' parts left out."""
    in_j = TABLES[table].c.domicile.in_(codes)
    guest = exchange.guest_part(table)
    return in_j if guest is None else sa.and_(in_j, ~guest)


def purge(source: Cell, codes: tuple[str, ...], target: str) -> PurgeReport:
    report = PurgeReport()

    def unhook() -> None:
        # The capture log is over; on SQLite the seal is installed again with this version's
        # rule (an older seal has no `purging` pass), in the same transaction as the drop.
        with source.store.begin() as conn:
            prefer_to_lose(conn)
            remove_triggers(conn, capture=True, seal=conn.dialect.name == "sqlite")
            if conn.dialect.name == "sqlite":
                install_seal(conn, codes, target)

    retrying(unhook)
    # A step of rows per transaction, the seal up in between: the source serves its other
    # jurisdictions meanwhile, and one transaction over all of J's rows held SQLite's one
    # writer lock (or PostgreSQL's row locks and WAL) for seconds. A kill between steps
    # leaves rows of J that the resumed purge deletes: the seal keeps new ones out.
    sqlite = source.store.backend == "sqlite"
    rows_per_step, gap_s = (SQLITE_PURGE_STEP, SQLITE_GAP_S) if sqlite else (PURGE_STEP, 0.0)
    for table in reversed(DATA_MAP.tables):
        tbl = TABLES[table.name]
        key = tbl.c[table.primary_key]
        step = sa.delete(tbl).where(
            key.in_(sa.select(key).where(of_j(table.name, codes)).limit(rows_per_step))
        )

        def delete_step(step: sa.Delete = step) -> int:
            with source.store.begin() as conn, purging(conn):
                prefer_to_lose(conn)
                return int(conn.execute(step).rowcount)

        report.rows[table.name] = 0
        while True:
            deleted = retrying(delete_step)
            report.rows[table.name] += deleted
            if deleted < rows_per_step:
                break
            time.sleep(gap_s)
    with source.store.begin() as conn:
        conn.execute(sa.delete(TABLES["carve_changes"]))
    # Counters of staying videos still include J's views: rebuild them from what is left,
    # a step of videos at a time, since the source serves its other jurisdictions meanwhile.
    recompute_in_steps(source.store, now_ms())
    with source.store.connect() as conn:
        keep = {r[0] for r in conn.execute(sa.select(TABLES["blobs"].c.sha256))}
        for table in DATA_MAP.tables:
            tbl = TABLES[table.name]
            report.remaining[table.name] = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(tbl).where(of_j(table.name, codes))
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


def upgrade_seals(deployment: Deployment) -> list[str]:
    """Install again, with this version's rule, the seal of every carve past its cutover (in
    progress or finished) on its source; returns the carves' targets. A seal installed by an
    older version refuses guest copies of the carved cell's videos. Idempotent: SQLite's
    triggers are dropped and created again, PostgreSQL's shared function is replaced."""
    folder = carves_dir(deployment.data_dir)
    paths = [*sorted(folder.glob("*.json")), *sorted((folder / "finished").glob("*.json"))]
    done: list[str] = []
    for path in paths:
        spec = CarveSpec.from_json(path.read_text())
        names = deployment.policy.names
        if spec.target not in names or spec.source not in names:
            continue  # before its cutover (no seal yet), or a cell no longer served here
        source = deployment.cell(spec.source)

        def reseal(source: Cell = source, spec: CarveSpec = spec) -> None:
            with source.store.begin() as conn:
                prefer_to_lose(conn)
                install_seal(conn, spec.jurisdictions, spec.target)

        retrying(reseal)
        done.append(spec.target)
    return done
