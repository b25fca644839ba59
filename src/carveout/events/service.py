"""Ingest interaction events in batches: all or none, counters updated in the same commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from carveout.accounts import User
from carveout.core import InvalidInput, NotFound, new_id, now_ms
from carveout.datamap import TABLES
from carveout.events.models import EventIn, EventKind
from carveout.events.stats import apply_deltas, deltas
from carveout.storage import Store

EVENTS = TABLES["events"]
VIDEOS = TABLES["videos"]
MAX_BATCH = 500
MAX_WATCHED_MS = 24 * 3600 * 1000
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
MAX_AGE_MS = 7 * 24 * 3600 * 1000


def _check(events: Sequence[EventIn], now: int) -> None:
    if not events:
        raise InvalidInput("empty event batch")
    if len(events) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} events per batch, got {len(events)}")
    for i, ev in enumerate(events):
        if ev.kind is EventKind.WATCH:
            if ev.watched_ms is None or not 0 <= ev.watched_ms <= MAX_WATCHED_MS:
                raise InvalidInput(f"events[{i}]: watch needs watched_ms in 0..{MAX_WATCHED_MS}")
        elif ev.watched_ms is not None:
            raise InvalidInput(f"events[{i}]: watched_ms only belongs to watch events")
        if ev.occurred_at is not None and not (
            now - MAX_AGE_MS <= ev.occurred_at <= now + MAX_CLOCK_SKEW_MS
        ):
            raise InvalidInput(f"events[{i}]: occurred_at more than 7 days old or in the future")


_INSERT = sa.insert(EVENTS)
_VIDEOS_OF_BATCH = sa.select(VIDEOS.c.id, VIDEOS.c.duration_ms, VIDEOS.c.domicile).where(
    VIDEOS.c.id.in_(sa.bindparam("ids", expanding=True))
)


def record(store: Store, user: User, events: Sequence[EventIn]) -> int:
    """Store a batch of the user's events. Unknown videos reject the whole batch."""
    now = now_ms()
    _check(events, now)
    ids = sorted({ev.video_id for ev in events})
    with store.begin() as conn:
        found = conn.execute(_VIDEOS_OF_BATCH, {"ids": ids}).all()
        durations = {r.id: r.duration_ms for r in found}
        missing = [v for v in ids if v not in durations]
        if missing:
            raise NotFound(
                f"unknown video {missing[0]}"
                + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        rows: list[dict[str, Any]] = [
            {
                "id": new_id(),
                "domicile": user.domicile,
                "user_id": user.id,
                "video_id": ev.video_id,
                "kind": ev.kind.value,
                "watched_ms": ev.watched_ms,
                "created_at": ev.occurred_at if ev.occurred_at is not None else now,
            }
            for ev in events
        ]
        conn.execute(_INSERT, rows)
        apply_deltas(conn, deltas(rows, durations), {r.id: r.domicile for r in found}, now)
    return len(rows)


def record_in(
    conn: sa.Connection,
    user: User,
    video_id: str,
    kind: EventKind,
    now: int,
    *,
    duration_ms: int,
    video_domicile: str,
) -> None:
    """One server-side event (like, comment) inside the caller's transaction, on a video the
    caller has just read (its duration and domicile, which the counters need)."""
    row = {
        "id": new_id(),
        "domicile": user.domicile,
        "user_id": user.id,
        "video_id": video_id,
        "kind": kind.value,
        "watched_ms": None,
        "created_at": now,
    }
    conn.execute(_INSERT, row)
    apply_deltas(conn, deltas([row], {video_id: duration_ms}), {video_id: video_domicile}, now)
