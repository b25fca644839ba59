"""The carve's DDL on a serving PostgreSQL cell never costs a writer its write.

After the cutover the target serves J while verify drops its capture triggers (purge and abort do
the same on the source). DROP TRIGGER needs ACCESS EXCLUSIVE, which conflicts with the reads a
writer makes inside its own transaction: `events.record` reads the videos, then inserts events.
The interleaving below once ended in a deadlock that PostgreSQL resolved by aborting the writer
(HTTP 500 on POST /v1/events in `carveout bench carve --backends postgresql`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
import sqlalchemy as sa

from carveout.carve.capture import install_capture, install_seal, remove_triggers
from carveout.carve.ddl import prefer_to_lose, retrying
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.storage import Store

pytestmark = pytest.mark.postgres

VIDEOS, EVENTS, LIKES = TABLES["videos"], TABLES["events"], TABLES["likes"]
HANG_GUARD_S = 60.0  # only so a broken build fails instead of hanging; no step takes long


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def _waiting_pids(store: Store) -> set[int]:
    """Client backends of this database waiting for a lock right now."""
    with store.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database() "
            "AND a.backend_type = 'client backend'"
        )
        return {int(r[0]) for r in rows}


def _pid(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _capture_triggers(store: Store) -> int:
    with store.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'carve_cap'"
            ).scalar_one()
        )


def _row(table: sa.Table, **values: object) -> dict[str, object]:
    base = {"id": new_id(), "domicile": "US", "created_at": now_ms()}
    return {c.name: {**base, **values}.get(c.name) for c in table.c}


def test_removing_capture_triggers_never_deadlocks_a_writer_mid_transaction(
    pg_store: Store,
) -> None:
    store = pg_store
    video = _row(
        VIDEOS,
        creator_id=new_id(),
        caption="",
        hashtags="",
        category="",
        duration_ms=1000,
        width=1,
        height=1,
        blob_id=new_id(),
        status="published",
    )
    with store.begin() as conn:
        conn.execute(sa.insert(VIDEOS).values(video))
        install_capture(conn, ("US",))
    assert _capture_triggers(store) > 0
    outcome: dict[str, BaseException | None] = {}

    def attempt(name: str, work: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                work()
                outcome[name] = None
            except BaseException as exc:  # reported by the test, whatever it is
                outcome[name] = exc

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with store.engine.connect() as liker, store.engine.connect() as watcher:
        # A like, mid-transaction: its row is in, its commit not yet.
        liker.execute(sa.insert(LIKES).values(_row(LIKES, user_id=new_id(), video_id=video["id"])))
        # An events batch, mid-transaction: it has read the video, as events.record does first.
        watcher.execute(sa.select(VIDEOS.c.duration_ms).where(VIDEOS.c.id == video["id"]))
        watcher_pid = _pid(watcher)

        def remove_once() -> None:
            with store.begin() as conn:
                remove_triggers(conn, capture=True, seal=False)

        # One attempt of the removal verify makes, while both writers are mid-transaction: it
        # either gives up or waits for a lock (the like's).
        removal = attempt("removal", remove_once)
        _until(lambda: not removal.is_alive() or bool(_waiting_pids(store)), "removal settled")

        def insert_events() -> None:
            row = _row(EVENTS, user_id=new_id(), video_id=video["id"], kind="watch")
            watcher.execute(sa.insert(EVENTS).values(row))
            watcher.commit()

        # The events batch goes on to its insert: it gets the table, or waits for the removal.
        inserting = attempt("events", insert_events)
        _until(
            lambda: not inserting.is_alive() or watcher_pid in _waiting_pids(store),
            "events insert settled",
        )
        liker.commit()
        inserting.join()
        removal.join()
    # The writer's batch is stored, whatever the removal did; it never paid for the carve's DDL.
    assert outcome["events"] is None, f"the writer failed: {outcome['events']!r}"
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(EVENTS)).scalar_one() == 1
    # The removal gave up at the busy table instead of waiting there, and nothing was dropped;
    # tried again (as verify, purge and abort do), it goes through once the writers are done.
    failed = outcome["removal"]
    assert isinstance(failed, sa.exc.OperationalError), repr(failed)
    assert isinstance(failed.orig, psycopg.errors.LockNotAvailable), repr(failed)
    assert _capture_triggers(store) > 0

    def remove() -> None:
        with store.begin() as conn:
            remove_triggers(conn, capture=True, seal=False)

    retrying(remove)
    assert _capture_triggers(store) == 0


def _seal_triggers(store: Store) -> int:
    with store.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'carve_seal'"
            ).scalar_one()
        )


def test_the_seal_gives_way_to_a_writer_and_goes_in_once_it_is_done(pg_store: Store) -> None:
    """The cutover's seal waits for its locks only briefly (lock_timeout, half the writers'
    deadlock_timeout at most): a writer that keeps a carved table mid-transaction (here one
    that has written a like and goes on to write more, as moderation's resolve writes
    decisions and then videos) makes the attempt fail, with nothing sealed and the writer
    unharmed; the cutover's retry seals once the writer has committed."""
    store = pg_store

    def seal() -> None:
        with store.begin() as conn:
            install_seal(conn, ("US",), "na-anz")

    with store.engine.connect() as writer:
        writer.execute(sa.insert(LIKES).values(_row(LIKES, user_id=new_id(), video_id=new_id())))
        with pytest.raises(sa.exc.OperationalError) as failed:
            seal()
        assert isinstance(failed.value.orig, psycopg.errors.LockNotAvailable)
        assert _seal_triggers(store) == 0
        assert _waiting_pids(store) == set()  # the seal left no lock request behind
        # The writer goes on to another carved table and commits: nothing of the seal is held.
        row = _row(EVENTS, user_id=new_id(), video_id=new_id(), kind="watch")
        writer.execute(sa.insert(EVENTS).values(row))
        writer.commit()
    retrying(seal, pause_s=0.002)
    assert _seal_triggers(store) > 0
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(EVENTS)).scalar_one() == 1


def test_a_writer_in_a_cycle_with_the_seal_is_never_the_one_aborted(pg_store: Store) -> None:
    """A writer that holds a table late in map order (events) and then writes an earlier one
    (likes) closes a cycle with a seal holding likes and waiting for events. The seal gives up
    (its deadlock check or its short lock_timeout) long before the writer's deadlock check
    would run (1 s): the writer's transaction commits."""
    store = pg_store
    outcome: dict[str, BaseException | None] = {}

    def seal() -> None:
        try:
            with store.begin() as conn:
                prefer_to_lose(conn)
                install_seal(conn, ("US",), "na-anz")
            outcome["seal"] = None
        except BaseException as exc:  # reported by the test, whatever it is
            outcome["seal"] = exc

    with store.engine.connect() as writer:
        writer_pid = _pid(writer)
        row = _row(EVENTS, user_id=new_id(), video_id=new_id(), kind="watch")
        writer.execute(sa.insert(EVENTS).values(row))
        sealing = threading.Thread(target=seal)
        sealing.start()
        # The seal has taken the tables before events (likes among them) and waits for events.
        _until(lambda: bool(_waiting_pids(store) - {writer_pid}), "seal waiting")
        writer.execute(sa.insert(LIKES).values(_row(LIKES, user_id=new_id(), video_id=new_id())))
        writer.commit()
        sealing.join()
    failed = outcome["seal"]
    assert isinstance(failed, sa.exc.OperationalError), repr(failed)
    assert isinstance(
        failed.orig, psycopg.errors.LockNotAvailable | psycopg.errors.DeadlockDetected
    ), repr(failed)
    assert _seal_triggers(store) == 0
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(LIKES)).scalar_one() == 1
