"""PostgreSQL to PostgreSQL: capture, copy and catch-up by native logical replication.

A publication per carved table on the source with a row filter on `domicile`, and a
subscription on the target that copies the existing rows of the tables that have any and then
streams every change (the videos it touches are logged by carve/touched.py). Row filters on
UPDATE and DELETE need the filtered column in the replica identity, so the carved tables use
REPLICA IDENTITY FULL for the carve's duration. Replication carries rows only: blob files are
copied by the carve, DDL is refused by its schema check, and carveout's ids need no sequences.

The target's secondary indexes are dropped before the initial copy and built again once it is
done: the copy fills tables that nobody reads yet, and one index build after the load costs a
fraction of maintaining every index row by row (measured on KuaiRec's 79k rows of US/CA/AU/NZ,
no load: the rows' copy 2.06 s with the indexes in place, 0.62 s without). Primary keys and
unique constraints stay: they are the rules the copied rows must obey, and the stream applies
updates and deletes by primary key while the copy runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import psycopg
import sqlalchemy as sa
from psycopg import sql

from carveout.carve import touched
from carveout.carve.capture import carved_tables
from carveout.carve.ddl import retrying
from carveout.cells import Cell
from carveout.core import CarveoutError
from carveout.datamap import TABLES


class ReplicationError(CarveoutError):
    status = 500


def names(target: str) -> str:
    return "carve_" + "".join(ch if ch.isalnum() else "_" for ch in target)


def _dsn(store_url: str) -> str:
    url = sa.make_url(store_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _conninfo(store_url: str) -> str:
    url = sa.make_url(store_url)
    parts = {
        "host": url.host or "127.0.0.1",
        "port": str(url.port or 5432),
        "dbname": url.database or "",
        "user": url.username or "postgres",
    }
    if url.password:
        parts["password"] = str(url.password)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _autocommit(store_url: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(_dsn(store_url), autocommit=True)
    # Lose lock conflicts with serving writers, quickly, and retry (see carve/ddl.py).
    conn.execute("SET deadlock_timeout = '20ms'")
    conn.execute("SET lock_timeout = '5s'")
    return conn


def _alter_identity(conn: psycopg.Connection[tuple[object, ...]], table: str, mode: str) -> None:
    stmt = sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(
        sql.Identifier(table), sql.SQL(mode)
    )
    retrying(lambda: conn.execute(stmt))


def publications(carve: str) -> dict[str, str]:
    """Each carved table's publication. One per table, so that the subscription can take the
    tables with no row of J without copying them (see `start`); created before the slot,
    since a publication the slot's start position cannot see stops the decoding."""
    name = names(carve)
    return {table.name: f"{name}_{i:02d}" for i, table in enumerate(carved_tables())}


def start(source: Cell, target: Cell, codes: tuple[str, ...], carve: str) -> float:
    """Publications, slot and subscription; idempotent, so a resumed carve can call it again.
    Returns when (time.monotonic()) the subscription was asked to copy: the copy's clock.

    A table with no row of J once the slot exists is subscribed without an initial copy
    (nothing committed before the slot's start is left to copy, and everything after it is
    streamed). Each table the subscription copies costs a synchronisation worker its own slot,
    snapshot and hand-over to the apply worker, 20-60 ms even when empty, in the order of the
    tables' names: skipping the empty ones lets `videos` and `users` start with the others
    instead of last. The tables with rows are added after the empty ones (added, enabled,
    refreshed), so only they are copied."""
    name = names(carve)
    pubs = publications(carve)
    src_url = source.store.dsn()
    tgt_url = target.store.dsn()
    # `domicile IN (...)` is refused in a publication's row filter (it becomes an array
    # operator); a chain of equalities is accepted.
    in_j = sql.SQL(" OR ").join(sql.SQL("domicile = {}").format(sql.Literal(c)) for c in codes)
    with _autocommit(src_url) as conn:
        for table in carved_tables():
            _alter_identity(conn, table.name, "FULL")
        if _exists(conn, "pg_publication", "pubname", name):
            # A carve begun by a carveout from before the per-table publications, resumed: its
            # one publication of every table was made before its slot and carries on alone
            # (one made now, after the slot, would stop the decoding); every table is copied.
            pubs = {"": name}
        for table_name, pub in pubs.items():
            if _exists(conn, "pg_publication", "pubname", pub):
                continue
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WHERE ({})").format(
                    sql.Identifier(pub), sql.Identifier(table_name), in_j
                )
            )
        # The slot is made here, not by CREATE SUBSCRIPTION: that would wait forever when both
        # databases live in the same server (the slot waits for the subscribing transaction).
        if not _exists(conn, "pg_replication_slots", "slot_name", name):
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
        # Read after the slot exists: every row committed before its start is visible here.
        empty = [t for t in pubs if t and not _has_rows_of(conn, t, in_j)]
    with _autocommit(tgt_url) as conn:
        return _subscribe(conn, name, _conninfo(src_url), pubs, empty)


def _exists(
    conn: psycopg.Connection[tuple[object, ...]], catalog: str, column: str, name: str
) -> bool:
    """Whether the catalog table `catalog` has a row whose `column` is `name`."""
    query = sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(
        sql.Identifier(catalog), sql.Identifier(column)
    )
    return conn.execute(query, (name,)).fetchone() is not None


def _has_rows_of(
    conn: psycopg.Connection[tuple[object, ...]], table: str, in_j: sql.Composed
) -> bool:
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(sql.Identifier(table), in_j)
    ).fetchone()
    return bool(row and row[0])


def _subscribe(
    conn: psycopg.Connection[tuple[object, ...]],
    name: str,
    conninfo: str,
    pubs: dict[str, str],
    empty: list[str],
) -> float:
    """The subscription in steps, each skipped when a resumed carve finds it done: created
    (disabled) on the empty tables' publications without a copy, the others' added, enabled,
    and refreshed with a copy of the tables it does not have yet. Returns when these steps
    began: the copy's clock starts with them."""
    sub = sql.Identifier(name)
    copy_asked = time.monotonic()
    found = conn.execute(
        "SELECT subenabled, subpublications FROM pg_subscription WHERE subname = %s", (name,)
    ).fetchone()
    if found is None:
        for index in _secondary_indexes():
            drop = sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(str(index.name)))
            conn.execute(drop)
        first = [pubs[t] for t in empty] or list(pubs.values())
        conn.execute(
            sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
                "WITH (create_slot = false, slot_name = {}, copy_data = {}, enabled = false, "
                # The cutover waits for the slot's confirmed flush position: with the
                # default (off) the subscriber confirms an applied change only after the
                # WAL writer's next round (wal_writer_delay, 200 ms), inside the pause.
                "synchronous_commit = 'on')"
            ).format(
                sub,
                sql.Literal(conninfo),
                sql.SQL(", ").join(map(sql.Identifier, first)),
                sql.Literal(name),
                sql.Literal(not empty),
            )
        )
        enabled, subscribed = False, first
    else:
        enabled, subscribed = bool(found[0]), cast(list[str], found[1])
    missing = [p for p in pubs.values() if p not in subscribed]
    if missing:
        conn.execute(
            sql.SQL("ALTER SUBSCRIPTION {} ADD PUBLICATION {} WITH (refresh = false)").format(
                sub, sql.SQL(", ").join(map(sql.Identifier, missing))
            )
        )
    if not enabled:
        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sub))
    row = conn.execute(
        "SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s "
        "ON s.oid = r.srsubid WHERE s.subname = %s",
        (name,),
    ).fetchone()
    if row is not None and cast(int, row[0]) < len(pubs):
        conn.execute(
            sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = true)").format(sub)
        )
    return copy_asked


SYNC_POLL_S = 0.01


def wait_synced(target: Cell, carve: str, timeout_s: float = 600) -> None:
    """Until every table's initial copy is done and streaming ('r' in pg_subscription_rel)."""
    name = names(carve)
    tgt_url = target.store.dsn()
    deadline = time.monotonic() + timeout_s
    with _autocommit(tgt_url) as conn:
        while True:
            rows = conn.execute(
                "SELECT r.srsubstate FROM pg_subscription_rel r "
                "JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = %s",
                (name,),
            ).fetchall()
            if rows and all(r[0] == "r" for r in rows) and len(rows) == len(carved_tables()):
                break
            if time.monotonic() > deadline:
                raise ReplicationError(f"initial copy of {name} not done after {timeout_s:.0f} s")
            # A one-row catalogue read: polled often, since the copy phase ends on the first
            # look after the last table is ready (a 0.1 s poll added 0-100 ms to a ~1 s copy).
            time.sleep(SYNC_POLL_S)
    _build_indexes(target)


def _secondary_indexes() -> list[sa.Index]:
    """The carved tables' non-unique indexes, as the schema declares them."""
    return [
        index
        for table in carved_tables()
        for index in sorted(TABLES[table.name].indexes, key=lambda i: str(i.name))
        if not index.unique
    ]


def _build_indexes(target: Cell) -> None:
    """The indexes dropped before the copy, built again (those already there are left alone,
    so a resumed copy phase builds only what a kill left missing)."""
    with target.store.begin() as conn:
        for index in _secondary_indexes():
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _flushed_lsn(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """A WAL position at or past every commit made before the call, flushed (so the walsender
    can send it). With `synchronous_commit = off` a commit is acknowledged before its WAL is
    written or flushed: `pg_current_wal_lsn()` (the write position) could stop short of it,
    so a write acknowledged before the seal could reach the target after the switch; and the
    walsender sends only flushed WAL, up to the WAL writer's next round (wal_writer_delay,
    200 ms), which is what the cutover's wait used to spend. A transaction of our own that
    writes WAL (a logical message, which the subscription ignores) and commits with
    synchronous_commit on flushes everything inserted before it."""
    conn.execute("SET synchronous_commit = on")
    with conn.transaction():
        conn.execute("SELECT pg_logical_emit_message(true, 'carveout.carve', 'flush')")
    row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def _wait_confirmed(
    conn: psycopg.Connection[tuple[object, ...]], slot: str, lsn: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute(
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (lsn, slot),
        ).fetchone()
        if row is None:
            raise ReplicationError(f"replication slot {slot} is gone from the source")
        if row[0]:
            return
        if time.monotonic() > deadline:
            raise ReplicationError(f"subscriber did not reach {lsn} in {timeout_s:.0f} s")
        time.sleep(0.005)


class CatchUp:
    """Waits until the subscriber has everything committed at the source so far, on one
    connection opened beforehand: inside the cutover's pause, new connections to the source
    cost more than the wait itself."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], carve: str) -> None:
        self._conn = conn
        self._slot = names(carve)

    def wait(self, timeout_s: float = 120) -> None:
        _wait_confirmed(self._conn, self._slot, _flushed_lsn(self._conn), timeout_s)


@contextmanager
def catching_up(source: Cell, carve: str) -> Iterator[CatchUp]:
    with _autocommit(source.store.dsn()) as conn:
        yield CatchUp(conn, carve)


def stop(source: Cell, target: Cell | None, carve: str, *, restore_identity: bool = True) -> None:
    """Drop the touched-video log, subscription, slot and publication; and (unless inside the
    cutover's pause, where it would only add lock waits) the carved tables' replica identity
    back to default."""
    name = names(carve)
    src_url = source.store.dsn()
    if target is not None:
        touched.unwatch(target)
        tgt_url = target.store.dsn()
        with _autocommit(tgt_url) as conn:
            if conn.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (name,)).fetchone():
                sub = sql.Identifier(name)
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sub))
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(sub))
                conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sub))
    with _autocommit(src_url) as conn:
        for _ in range(100):  # the walsender may take a moment to let go of the slot
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (name,)
            ).fetchone()
            if row is None:
                break
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                break
            time.sleep(0.05)
        # The per-table publications, and the one publication of carves started before them.
        for pub in [name, *publications(carve).values()]:
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(pub)))
        if not restore_identity:
            return
        for table in carved_tables():
            _alter_identity(conn, table.name, "DEFAULT")
