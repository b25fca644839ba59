"""The embedded default store: one SQLite file per cell, in WAL mode."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout.storage.engine import SqlStore, upgrade


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while a writer commits; NORMAL sync is durable across app crashes
    # in WAL mode. busy_timeout makes concurrent writers wait instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=OFF")
    cur.close()


class SqliteStore(SqlStore):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            sqlite3.connect(self.path).close()
        # mode=rw: a cell file that disappears while open is an error, never a new empty
        # database that a carve or a reader would mistake for a cell with no rows.
        engine = sa.create_engine(
            f"sqlite:///file:{self.path}?mode=rw&uri=true", pool_size=8, max_overflow=8
        )
        sa.event.listen(engine, "connect", _on_connect)
        super().__init__(engine, "sqlite")
        # SQLite has one writer at a time. Queueing this process's writers on a lock is fair
        # and immediate, where SQLite's busy handler sleeps in growing steps (seconds of p99
        # under concurrent ingest). Other processes still meet busy_timeout.
        self._write_lock = threading.RLock()

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def migrate(self) -> str:
        # Python's sqlite3 opens a transaction only before INSERT/UPDATE/DELETE, so DDL would
        # commit statement by statement: a process killed mid-migration left half a schema
        # that no later migration could get past. BEGIN IMMEDIATE makes the upgrade atomic.
        with self._write_lock, self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            upgrade(conn)
            conn.commit()
        version = self.schema_version()
        assert version is not None
        return version

    def begin(self) -> AbstractContextManager[sa.Connection]:
        return self._locked_begin()

    @contextmanager
    def _locked_begin(self) -> Iterator[sa.Connection]:
        with self._write_lock, self.engine.begin() as conn:
            yield conn
