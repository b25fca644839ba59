"""Retention: rows older than the data map's retention period are deleted by a scheduled job.

The periods live in the data map (`Retention(days, basis, column)`), so there is no second list:
raw events after 365 days (aggregates in video_stats are kept), sessions 30 days after they
expire; export archives after EXPORT_DAYS. Deletes go in bounded batches so a large backlog
never holds the cell's write lock for long."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.core import now_ms
from carveout.datamap import DATA_MAP, TABLES
from carveout.privacy.exports import EXPORT_DAYS, export_path

DAY_MS = 24 * 3600 * 1000
BATCH = 5000
REQUESTS = TABLES["privacy_requests"]


@dataclass
class RetentionReport:
    cell: str
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows
    export_files: int = 0


def enforce(cell: Cell, now: int | None = None) -> RetentionReport:
    at = now if now is not None else now_ms()
    report = RetentionReport(cell.name)
    for table in DATA_MAP.tables:
        days = table.retention.days
        if days is None:
            continue
        tbl = TABLES[table.name]
        key = tbl.c[table.primary_key]
        cutoff = at - days * DAY_MS
        total = 0
        while True:
            with cell.store.begin() as conn:
                ids = list(
                    conn.execute(
                        sa.select(key).where(tbl.c[table.retention.column] < cutoff).limit(BATCH)
                    ).scalars()
                )
                if ids:
                    conn.execute(sa.delete(tbl).where(key.in_(ids)))
            total += len(ids)
            if len(ids) < BATCH:
                break
        report.deleted[table.name] = total
    report.export_files = _expire_exports(cell, at - EXPORT_DAYS * DAY_MS)
    return report


def _expire_exports(cell: Cell, cutoff: int) -> int:
    with cell.store.connect() as conn:
        rows = conn.execute(
            sa.select(REQUESTS.c.id, REQUESTS.c.file).where(
                REQUESTS.c.kind == "export",
                REQUESTS.c.file.is_not(None),
                REQUESTS.c.updated_at < cutoff,
            )
        ).all()
    for r in rows:
        export_path(cell, r.file).unlink(missing_ok=True)
    if rows:
        with cell.store.begin() as conn:
            conn.execute(
                sa.update(REQUESTS)
                .where(REQUESTS.c.id.in_([r.id for r in rows]))
                .values(file=None, status="expired")
            )
    return len(rows)
