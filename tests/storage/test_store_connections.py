"""How a store hands out connections: reads outside transactions, and pooled connections
checked for liveness only after they sat idle."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from test_store_contract import count, user

from carveout.datamap import TABLES
from carveout.storage import PostgresStore, Store
from carveout.storage.pgcluster import PgCluster

USERS = TABLES["users"]


def test_read_sees_commits_and_leaves_transactions_atomic(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(USERS.insert(), [user(1)])
    for _ in range(3):
        with store.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(USERS)).scalar_one() == 1

    class Boom(Exception):
        pass

    # The pooled connection a read used is transactional again for a write.
    with pytest.raises(Boom), store.begin() as conn:
        conn.execute(USERS.insert(), [user(2)])
        conn.execute(USERS.insert(), [user(3)])
        raise Boom
    assert count(store, "users") == 1


@pytest.mark.postgres
def test_read_opens_no_transaction_on_postgresql(pg_store: Store) -> None:
    def status(conn: sa.Connection) -> psycopg.pq.TransactionStatus:
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        return driver.info.transaction_status

    with pg_store.read() as conn:
        conn.execute(sa.select(USERS.c.id)).all()
        assert status(conn) is psycopg.pq.TransactionStatus.IDLE
    with pg_store.begin() as conn:
        conn.execute(sa.select(USERS.c.id)).all()
        assert status(conn) is psycopg.pq.TransactionStatus.INTRANS


@pytest.fixture
def make_pg(pg_server: PgCluster, pg_url: str) -> Iterator[Callable[[float], PostgresStore]]:
    made: list[PostgresStore] = []

    def make(ping_after_idle_s: float) -> PostgresStore:
        store = PostgresStore(pg_url, ping_after_idle_s=ping_after_idle_s)
        store.migrate()
        made.append(store)
        return store

    yield make
    for store in made:
        store.dispose()


def _pings(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    ping = store.engine.dialect.do_ping

    def counted(dbapi: Any) -> bool:
        seen.append(1)
        return ping(dbapi)

    monkeypatch.setattr(store.engine.dialect, "do_ping", counted)
    return seen


def _one(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.select(sa.literal(1))).scalar_one())


@pytest.mark.postgres
def test_a_connection_back_within_the_window_is_not_pinged(
    make_pg: Callable[[float], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_pg(60.0)
    pings = _pings(store, monkeypatch)
    for _ in range(5):
        assert _one(store) == 1
    assert pings == []


@pytest.mark.postgres
def test_a_connection_the_server_dropped_is_replaced_at_checkout(
    make_pg: Callable[[float], PostgresStore],
    pg_server: PgCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = make_pg(0.0)  # every checkout pings
    assert _one(store) == 1
    pings = _pings(store, monkeypatch)
    with pg_server.admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (sa.make_url(store.dsn()).database,),
        )
    assert _one(store) == 1
    with store.begin() as conn:
        conn.execute(USERS.insert(), [user(4)])
    assert count(store, "users") == 1
    assert len(pings) >= 2
