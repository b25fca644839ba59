"""Shared fixtures: a private PostgreSQL server per test session, and fresh migrated stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from carveout.storage import PostgresStore, SqliteStore, Store
from carveout.storage.pgcluster import PgCluster

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

MakeStore = Callable[..., Store]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL 15 server per session (with xdist: per worker)."""
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_server: PgCluster) -> Iterator[str]:
    """The URL of a fresh, uniquely named database that does not exist yet."""
    url = pg_server.fresh_url()
    yield url
    pg_server.drop_database(sa.make_url(url).database or "")


@pytest.fixture
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """`make_store("sqlite" | "postgresql", migrate=True)`: a new empty store, disposed (and its
    PostgreSQL database dropped) after the test. PostgreSQL starts only when asked for."""
    opened: list[tuple[Store, PgCluster | None, str]] = []

    def make(backend: str, *, migrate: bool = True) -> Store:
        store: Store
        server: PgCluster | None = None
        dbname = ""
        if backend == "sqlite":
            store = SqliteStore(tmp_path / f"store-{len(opened)}.db")
        elif backend == "postgresql":
            server = request.getfixturevalue("pg_server")
            url = server.fresh_url()
            dbname = sa.make_url(url).database or ""
            store = PostgresStore(url)
        else:
            raise ValueError(f"unknown backend {backend!r}")
        opened.append((store, server, dbname))
        if migrate:
            store.migrate()
        return store

    yield make
    for store, server, dbname in reversed(opened):
        store.dispose()
        if server is not None:
            server.drop_database(dbname)


@pytest.fixture
def sqlite_store(make_store: MakeStore) -> Store:
    return make_store("sqlite")


@pytest.fixture
def pg_store(make_store: MakeStore) -> Store:
    return make_store("postgresql")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, make_store: MakeStore) -> Store:
    """A migrated, empty store on each backend: the fixture contract suites run against."""
    return make_store(request.param)
