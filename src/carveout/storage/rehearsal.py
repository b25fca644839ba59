"""A Store for dress rehearsals: real write paths run on one held connection, none of it kept.

A fresh PostgreSQL backend pays for its first statements on each table (catalogue caches,
trigger functions compiled, foreign-key checks planned): a few milliseconds a request. A carve's
target gets a burst of fresh connections the moment its fence comes down; running the write
paths once on each pooled connection beforehand, inside a transaction that is rolled back,
moves that cost out of the pause without changing a row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NoReturn

import sqlalchemy as sa

from carveout.storage.port import Row, Store


class Rehearsal:
    """Every transaction a caller opens is a savepoint of the connection's one transaction,
    which the owner of the connection rolls back; reads run on the same connection. Anything
    that is not a statement on the connection (bulk loads, migrations, disposal) is refused."""

    def __init__(self, store: Store, conn: sa.Connection) -> None:
        if not conn.in_transaction():
            raise ValueError("a rehearsal needs a connection inside a transaction")
        self._store = store
        self._conn = conn

    @property
    def backend(self) -> str:
        return self._store.backend

    @property
    def url(self) -> str:
        return self._store.url

    def dsn(self) -> str:
        return self._store.dsn()

    def schema_version(self) -> str | None:
        return self._store.schema_version()

    @contextmanager
    def _nested(self) -> Iterator[sa.Connection]:
        with self._conn.begin_nested():
            yield self._conn

    @contextmanager
    def _same(self) -> Iterator[sa.Connection]:
        yield self._conn

    def begin(self) -> AbstractContextManager[sa.Connection]:
        return self._nested()

    def connect(self) -> AbstractContextManager[sa.Connection]:
        return self._same()

    def read(self) -> AbstractContextManager[sa.Connection]:
        return self._same()

    def _refuse(self, what: str) -> NoReturn:
        raise RuntimeError(f"{what} is not part of a rehearsal")

    def migrate(self) -> str:
        self._refuse("migrate")

    def bulk_insert(self, table: str, rows: Sequence[Row]) -> int:
        self._refuse("bulk_insert")

    def columns(self) -> dict[str, list[str]]:
        return self._store.columns()

    def iter_rows(
        self, table: str, *, order_by: str, chunk_size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        self._refuse("iter_rows")

    def analyze(self) -> None:
        self._refuse("analyze")

    def dispose(self) -> None:
        self._refuse("dispose")
