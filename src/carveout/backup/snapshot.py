"""A consistent snapshot of a cell's database while it serves, with per-table checks.

The checks read the snapshot while a worker thread writes it out (chunks, zstd, AES-GCM,
fsyncs): the writing is I/O and C code that releases the GIL, and so are a SQLite snapshot's
checks (SQLite builds each row's text, backup/digest.py), so on two cores the backup costs
about the longer of the two instead of their sum."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from carveout.backup.digest import sqlite_checks, sqlite_schema_version
from carveout.backup.digest_pg import pg_checks
from carveout.backup.models import PG_COPY, ROW_REPR, SQLITE_JSON, BackupError, TableCheck
from carveout.backup.pgtools import libpq_url, pg_tool
from carveout.cells import Cell
from carveout.storage import SqliteStore

SQLITE_SNAPSHOT = "sqlite3 online backup API"
PG_SNAPSHOT = "pg_dump -Fc -Z0 in an exported repeatable-read snapshot"

# Called with the snapshot file once it is complete, in a worker thread beside the checks.
Write = Callable[[Path], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    path: Path
    method: str
    schema_version: str | None
    tables: dict[str, TableCheck]
    seconds: float  # until the snapshot file was complete
    checks_seconds: float  # the per-table checks, while `write` ran
    write_seconds: float  # `write`, while the checks ran
    table_digest: str = ROW_REPR  # how `tables` was computed (backup/digest.py)


def snapshot_cell(cell: Cell, scratch: Path, write: Write) -> Snapshot:
    """Snapshot the cell's database into `scratch`, then `write` it out and check every table
    of that same snapshot at once."""
    if isinstance(cell.store, SqliteStore):
        return _sqlite(cell.store.path, scratch / "cell.db", write)
    if cell.store.backend == "postgresql":
        return _postgres(cell, scratch / "cell.dump", write)
    raise BackupError(f"cell {cell.name!r}: no snapshot method for backend {cell.store.backend}")


def _beside(write: Callable[[], None], checks: Callable[[], T]) -> tuple[T, float, float]:
    """Run `write` in a worker thread while `checks` runs here: (checks' result, checks'
    seconds, write's seconds). A failure of either is raised once both have stopped."""

    def timed_write() -> float:
        started = time.perf_counter()
        write()
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-write") as pool:
        writing = pool.submit(timed_write)
        started = time.perf_counter()
        result = checks()
        checks_s = time.perf_counter() - started
        write_s = writing.result()
    return result, checks_s, write_s


def _sqlite(source: Path, target: Path, write: Write) -> Snapshot:
    if not source.is_file():
        raise BackupError(f"cell database {source} does not exist")
    started = time.perf_counter()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        # The copy is scratch: the sealed chunks are what is fsynced. No journal and no syncs
        # while it is written, nor while it is switched out of WAL mode below.
        dst.execute("PRAGMA synchronous=OFF")
        dst.execute("PRAGMA journal_mode=OFF")
        # pages=-1 copies every page in one step under one read transaction: a consistent
        # snapshot, and in WAL mode the cell's writers carry on meanwhile.
        src.backup(dst, pages=-1)
        # The copy carries the source's WAL flag: back to one self-contained file, so the
        # bytes written out are final and need nothing beside them.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    taken = time.perf_counter()
    # Read-only and immutable: the checks must not touch the file the worker is reading.
    (checks, version), checks_s, write_s = _beside(
        lambda: write(target),
        lambda: (sqlite_checks(target, immutable=True), sqlite_schema_version(target)),
    )
    return Snapshot(
        target, SQLITE_SNAPSHOT, version, checks, taken - started, checks_s, write_s, SQLITE_JSON
    )


def _postgres(cell: Cell, target: Path, write: Write) -> Snapshot:
    started = time.perf_counter()
    spent: dict[str, float] = {}
    with cell.store.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot_id = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            # pg_dump reads the exported snapshot while this transaction holds it open, so the
            # dump and the checks (read here meanwhile) see the same instant. -Z0: zstd
            # compresses later.
            dump = subprocess.Popen(  # noqa: S603 - fixed argv of PostgreSQL's own tool
                [
                    str(pg_tool("pg_dump")),
                    "-Fc",
                    "-Z0",
                    f"--snapshot={snapshot_id}",
                    "--no-owner",
                    "-f",
                    str(target),
                    "-d",
                    libpq_url(cell.spec.storage),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )

            def dump_then_write() -> None:
                _, err = dump.communicate()
                spent["dump"] = time.perf_counter() - started
                if dump.returncode != 0:
                    raise BackupError(f"pg_dump of cell {cell.name!r} failed: {err.strip()}")
                write(target)
                spent["write"] = time.perf_counter() - started - spent["dump"]

            def checks() -> tuple[dict[str, TableCheck], str | None]:
                version = conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                return pg_checks(conn), version.scalar()

            (tables, version), checks_s, _ = _beside(dump_then_write, checks)
    return Snapshot(
        target, PG_SNAPSHOT, version, tables, spent["dump"], checks_s, spent["write"], PG_COPY
    )
