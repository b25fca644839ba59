"""The storage port: what every backend (SQLite, PostgreSQL) offers a cell's services."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa

Row = Mapping[str, Any]


@runtime_checkable
class Store(Protocol):
    """A cell's relational store. Queries are SQLAlchemy Core statements over `datamap.TABLES`,
    so one service implementation runs on every backend; what differs per backend (connection
    setup, bulk loading, database lifecycle) lives behind this port."""

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        ...

    @property
    def url(self) -> str:
        """Where the data lives, without credentials."""
        ...

    def dsn(self) -> str:
        """The full connection URL, credentials included, for PostgreSQL's own tools."""
        ...

    def migrate(self) -> str:
        """Apply every pending migration; return the schema version now in force."""
        ...

    def schema_version(self) -> str | None: ...

    def begin(self) -> AbstractContextManager[sa.Connection]:
        """A connection inside one transaction: committed on exit, rolled back on error."""
        ...

    def connect(self) -> AbstractContextManager[sa.Connection]:
        """A connection for reads (and explicit transactions)."""
        ...

    def read(self) -> AbstractContextManager[sa.Connection]:
        """A connection for reads outside any transaction: each statement sees what was
        committed when it started (PostgreSQL: autocommit, so no BEGIN and ROLLBACK round trips
        around a request's lookups). Not for writes, nor for reads that must share a snapshot."""
        ...

    def bulk_insert(self, table: str, rows: Sequence[Row]) -> int:
        """Insert many rows in one transaction by the backend's fastest path."""
        ...

    def columns(self) -> dict[str, list[str]]:
        """Every table and its columns as the database itself reports them."""
        ...

    def iter_rows(
        self, table: str, *, order_by: str, chunk_size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of a table in primary-key order, chunk by chunk (keyset pagination)."""
        ...

    def analyze(self) -> None:
        """Refresh the planner's statistics (after bulk loads; before serving)."""
        ...

    def dispose(self) -> None: ...
