"""Warm a carve's target before its fence comes down: the write paths rehearsed on a connection.

When a cutover's fence drops, every held write of the moving jurisdictions starts at once on the
target, most of them on PostgreSQL backends that have run nothing yet: each first statement on a
table loads catalogue entries, compiles trigger functions and plans foreign-key checks, 2-10 ms
of server CPU a request kind (measured on the carve bench's write mix). A server that learns of
the coming cutover opens the target and runs the same requests the held writes will run, once
per pooled connection, in a transaction rolled back at the end (`storage.Rehearsal`)."""

from __future__ import annotations

import logging
from dataclasses import replace

import sqlalchemy as sa

from carveout.accounts import User, authenticate, get_user
from carveout.cells import Cell
from carveout.core import CarveoutError
from carveout.datamap import TABLES
from carveout.events import EventIn, EventKind, record
from carveout.social import add_comment, follow, like
from carveout.storage import Rehearsal

log = logging.getLogger(__name__)

USERS, VIDEOS, LIKES = TABLES["users"], TABLES["videos"], TABLES["likes"]
# A rehearsal never waits long for a row lock (the carve's counter rebuild and the subscription
# write the same tables meanwhile): it gives up, and its rollback lets them go on.
LOCK_TIMEOUT = "50ms"
WARM_COMMENT = "warm-up"


def _actors(conn: sa.Connection, codes: tuple[str, ...]) -> tuple[str, str] | None:
    """Two active users of the moving jurisdictions: one acts, the other is followed."""
    ids = conn.execute(
        sa.select(USERS.c.id)
        .where(USERS.c.domicile.in_(codes), USERS.c.status == "active")
        .order_by(USERS.c.id)
        .limit(2)
    ).scalars()
    found = [str(i) for i in ids]
    return (found[0], found[1]) if len(found) == 2 else None


def _videos(conn: sa.Connection, user_id: str) -> list[str]:
    """Published videos the user has not liked, so the like path runs to its end."""
    liked = sa.select(LIKES.c.video_id).where(LIKES.c.user_id == user_id)
    rows = conn.execute(
        sa.select(VIDEOS.c.id)
        .where(VIDEOS.c.status == "published", VIDEOS.c.id.not_in(liked))
        .order_by(VIDEOS.c.id)
        .limit(2)
    ).scalars()
    return [str(v) for v in rows]


def rehearse_writes(cell: Cell, conn: sa.Connection) -> int:
    """Run the write requests the cell will serve (sign-in lookup, an event batch, a like, a
    comment, a follow) on `conn`, which the caller holds in a transaction and rolls back.
    Returns how many ran to completion; a request the data does not allow is skipped."""
    if conn.dialect.name != "postgresql":
        # SQLite has no per-backend catalogue to load, and a rehearsal's writes would take the
        # one write lock the carve's last changes need.
        return 0
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    rehearsal = replace(cell, store=Rehearsal(cell.store, conn))
    store = rehearsal.store
    actors = _actors(conn, cell.spec.jurisdictions)
    if actors is None:
        return 0
    actor_id, other_id = actors
    user: User = get_user(rehearsal, actor_id)
    videos = _videos(conn, actor_id)
    if not videos:
        return 0
    steps = (
        lambda: authenticate(rehearsal, "warm-up: no such token"),
        lambda: record(store, user, [EventIn(videos[0], EventKind.WATCH, watched_ms=1000)]),
        lambda: like(store, user, videos[-1]),
        lambda: add_comment(rehearsal, user, videos[0], WARM_COMMENT),
        lambda: follow(store, user, other_id),
    )
    done = 0
    for step in steps:
        try:
            with conn.begin_nested():
                step()
            done += 1
        except (CarveoutError, sa.exc.DBAPIError) as exc:
            # Expected for the sign-in lookup; otherwise a lock timeout or a row the data
            # forbids: that request just stays cold.
            log.debug("warm-up step skipped on %s: %s", cell.name, exc)
    return done
