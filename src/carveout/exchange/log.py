"""The exchange log: one append-only row per video sent, received, re-moderated or withdrawn."""

from __future__ import annotations

import sqlalchemy as sa

from carveout.core import now_ms
from carveout.datamap import TABLES
from carveout.exchange.models import LogEntry
from carveout.storage import Store

LOG = TABLES["exchange_log"]


def append(
    conn: sa.Connection,
    *,
    run_id: str,
    direction: str,
    origin: str,
    receiver: str,
    video_id: str,
    action: str,
    nbytes: int,
    outcome: str,
) -> None:
    """Inside the caller's transaction, so an entry exists exactly when its change does.
    PostgreSQL numbers entries from the column's sequence, so concurrent syncs through one
    origin (to different receivers) never collide; SQLite serialises writers, so max+1 under
    the writing transaction is unique there."""
    values: dict[str, object] = {}
    if conn.dialect.name != "postgresql":
        seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(LOG.c.seq), 0) + 1))
        values["seq"] = int(seq.scalar_one())
    conn.execute(
        sa.insert(LOG).values(
            **values,
            run_id=run_id,
            direction=direction,
            origin_cell=origin,
            receiving_cell=receiver,
            video_id=video_id,
            action=action,
            bytes=nbytes,
            outcome=outcome[:200],
            created_at=now_ms(),
        )
    )


def read(store: Store, *, limit: int = 100, video_id: str | None = None) -> list[LogEntry]:
    """The newest entries first."""
    stmt = sa.select(LOG).order_by(LOG.c.seq.desc()).limit(limit)
    if video_id is not None:
        stmt = stmt.where(LOG.c.video_id == video_id)
    with store.connect() as conn:
        return [LogEntry(**dict(r._mapping)) for r in conn.execute(stmt)]
