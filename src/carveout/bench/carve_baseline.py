"""The SQLite copy baselines: the online backup API and a raw file copy of the source cell's file
(PostgreSQL's, `pg_dump | psql`, is in carve_pg.py).

Both copy the whole database (every jurisdiction, indexes included) where the carve copies J's
rows only, so rates per row and per byte are what compare."""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from carveout.datamap import DATA_MAP, TABLES
from carveout.storage import Store


@dataclass(frozen=True)
class CopyRate:
    name: str
    rows: int
    bytes: int
    seconds: float
    extra: dict[str, int | float | str] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, float | int | str]:
        return {
            "name": self.name,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 2),
            **self.extra,
        }


def total_rows(store: Store) -> int:
    with store.connect() as conn:
        return sum(
            int(conn.execute(sa.select(sa.func.count()).select_from(TABLES[t.name])).scalar_one())
            for t in DATA_MAP.tables
        )


def backup_api(source: Path, dest: Path, rows: int) -> CopyRate:
    """`sqlite3.Connection.backup` in one step: a consistent copy while writers go on (WAL)."""
    dest.unlink(missing_ok=True)
    began = time.perf_counter()
    src = sqlite3.connect(source)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    seconds = time.perf_counter() - began
    return CopyRate("SQLite backup API", rows, dest.stat().st_size, seconds)


def file_copy(source: Path, dest: Path, rows: int) -> CopyRate:
    """cell.db and its WAL as bytes: the speed of the disk, not a consistent copy under writes."""
    began = time.perf_counter()
    size = 0
    for suffix in ("", "-wal"):
        src = source.with_name(source.name + suffix)
        if src.is_file():
            shutil.copyfile(src, dest.with_name(dest.name + suffix))
            size += src.stat().st_size
    seconds = time.perf_counter() - began
    return CopyRate("raw file copy", rows, size, seconds)


def db_bytes(path: Path) -> int:
    """A SQLite database's bytes on disk, its WAL included."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.is_file())
