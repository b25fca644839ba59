"""A consistent snapshot of a cell's database while it serves, with per-table checks."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from carveout.backup.models import BackupError, TableCheck
from carveout.backup.pgtools import libpq_url, pg_tool
from carveout.cells import Cell
from carveout.datamap import DATA_MAP
from carveout.storage import SqliteStore, SqlStore, Store, fingerprint, table_digest

SQLITE_SNAPSHOT = "sqlite3 online backup API"
PG_SNAPSHOT = "pg_dump -Fc -Z0 in an exported repeatable-read snapshot"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    method: str
    schema_version: str | None
    tables: dict[str, TableCheck]
    seconds: float
    checks_seconds: float


def store_checks(store: Store) -> dict[str, TableCheck]:
    """Per-table row counts and digests, exactly as `storage.fingerprint` computes them."""
    return {
        name: TableCheck(rows, digest) for name, (rows, digest) in fingerprint(store).tables.items()
    }


def snapshot_cell(cell: Cell, scratch: Path) -> Snapshot:
    if isinstance(cell.store, SqliteStore):
        return _sqlite(cell.store.path, scratch / "cell.db")
    if cell.store.backend == "postgresql":
        return _postgres(cell, scratch / "cell.dump")
    raise BackupError(f"cell {cell.name!r}: no snapshot method for backend {cell.store.backend}")


def _sqlite(source: Path, target: Path) -> Snapshot:
    if not source.is_file():
        raise BackupError(f"cell database {source} does not exist")
    started = time.perf_counter()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        # pages=-1 copies every page in one step under one read transaction: a consistent
        # snapshot, and in WAL mode the cell's writers carry on meanwhile.
        src.backup(dst, pages=-1)
    finally:
        dst.close()
        src.close()
    taken = time.perf_counter()
    store = SqliteStore(target)
    try:
        checks = store_checks(store)
        version = store.schema_version()
    finally:
        store.dispose()
    # The store switched the copy to WAL; back to one self-contained file with nothing beside it.
    conn = sqlite3.connect(target)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()
    done = time.perf_counter()
    return Snapshot(target, SQLITE_SNAPSHOT, version, checks, taken - started, done - taken)


def _postgres(cell: Cell, target: Path) -> Snapshot:
    started = time.perf_counter()
    pg_dump = pg_tool("pg_dump")
    with cell.store.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot_id = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            # pg_dump reads the exported snapshot while this transaction holds it open, so the
            # dump and the checks below see the same instant. -Z0: zstd compresses later.
            proc = subprocess.run(  # noqa: S603 - fixed argv of PostgreSQL's own tool
                [
                    str(pg_dump),
                    "-Fc",
                    "-Z0",
                    f"--snapshot={snapshot_id}",
                    "--no-owner",
                    "-f",
                    str(target),
                    "-d",
                    libpq_url(cell.spec.storage),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise BackupError(f"pg_dump of cell {cell.name!r} failed: {proc.stderr.strip()}")
            taken = time.perf_counter()
            checks = _connection_checks(conn)
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    done = time.perf_counter()
    return Snapshot(target, PG_SNAPSHOT, version, checks, taken - started, done - taken)


class _InSnapshot(SqlStore):
    """The cell's store seen through one open transaction: the dump's exported snapshot."""

    def __init__(self, conn: sa.Connection) -> None:
        super().__init__(conn.engine, "postgresql")
        self._conn = conn

    def connect(self) -> AbstractContextManager[sa.Connection]:
        return nullcontext(self._conn)


def _connection_checks(conn: sa.Connection) -> dict[str, TableCheck]:
    # storage.table_digest itself, reading inside the dump's transaction.
    pinned = _InSnapshot(conn)
    return {t.name: TableCheck(*table_digest(pinned, t.name)) for t in DATA_MAP.tables}
