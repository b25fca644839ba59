"""STEP 4 copy: J's rows and blobs, table by table in primary-key chunks, resumable per chunk.

The copy reads the source as it is now, not a frozen snapshot: every write to J since capture
started is in carve_changes, and catch-up re-syncs those rows, so the end state is exact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from carveout.carve import state
from carveout.carve.capture import carved_tables
from carveout.carve.sync import copy_blob_files, write_rows
from carveout.cells import Cell
from carveout.datamap import TABLES, Table

DONE = "__done__"
CHUNK_ROWS = 2000


@dataclass
class CopyStats:
    rows: int = 0
    chunks: int = 0
    bytes: int = 0
    blob_files: int = 0
    resumed_tables: int = 0


def _copy_table(
    source: Cell,
    target: Cell,
    table: Table,
    codes: tuple[str, ...],
    stats: CopyStats,
    on_chunk: Callable[[str, int], None],
    chunk_rows: int,
) -> None:
    key = f"copy:{table.name}"
    with target.store.connect() as conn:
        last = state.get(conn, key)
    if last == DONE:
        return
    if last is not None:
        stats.resumed_tables += 1
    tbl = TABLES[table.name]
    pk = tbl.c[table.primary_key]
    while True:
        stmt = sa.select(tbl).where(tbl.c.domicile.in_(codes)).order_by(pk).limit(chunk_rows)
        if last is not None:
            stmt = stmt.where(pk > last)
        with source.store.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        if table.blob_columns:
            stats.blob_files += copy_blob_files(source, target, rows, table)
        keys = [r[table.primary_key] for r in rows]
        done = len(rows) < chunk_rows
        with target.store.begin() as conn:
            write_rows(conn, table, keys, rows)
            last = keys[-1] if keys else last
            state.put(conn, key, DONE if done else last)
        stats.rows += len(rows)
        stats.chunks += 1
        stats.bytes += sum(len(str(v)) for r in rows for v in r.values() if v is not None)
        on_chunk(table.name, len(rows))
        if done:
            return


def copy_all(
    source: Cell,
    target: Cell,
    codes: tuple[str, ...],
    on_chunk: Callable[[str, int], None] = lambda _t, _n: None,
    chunk_rows: int = CHUNK_ROWS,
) -> CopyStats:
    stats = CopyStats()
    for table in carved_tables():
        _copy_table(source, target, table, codes, stats, on_chunk, chunk_rows)
    return stats
