"""Withdrawal: a guest copy whose origin no longer publishes it is removed, handle and media too."""

from __future__ import annotations

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.datamap import TABLES
from carveout.exchange import handles, log

VIDEOS, BLOBS, GUESTS = TABLES["videos"], TABLES["blobs"], TABLES["guest_videos"]
STATS, RESTRICTIONS = TABLES["video_stats"], TABLES["video_restrictions"]
DECISIONS, REVIEWS = TABLES["moderation_decisions"], TABLES["moderation_reviews"]


def withdraw(receiver: Cell, video_id: str, reason: str, run_id: str) -> int:
    """Delete every row of the guest copy in one transaction, then its media file if no row
    names it any more, and the creator's handle key if it was their last copy here. The
    receiving cell's users' likes, comments and events on it stay: they are their data, and
    keep the id as an opaque reference (as after a carve). Returns bytes freed."""
    with receiver.store.begin() as conn:
        g = conn.execute(sa.select(GUESTS).where(GUESTS.c.video_id == video_id)).first()
        if g is None:
            return 0
        blob_id = conn.execute(sa.select(VIDEOS.c.blob_id).where(VIDEOS.c.id == video_id)).scalar()
        for tbl, col in (
            (RESTRICTIONS, RESTRICTIONS.c.video_id),
            (STATS, STATS.c.video_id),
            (DECISIONS, DECISIONS.c.target_id),
            (REVIEWS, REVIEWS.c.target_id),
            (VIDEOS, VIDEOS.c.id),
        ):
            conn.execute(sa.delete(tbl).where(col == video_id))
        if blob_id is not None:
            still_used = conn.execute(
                sa.select(VIDEOS.c.id).where(VIDEOS.c.blob_id == blob_id).limit(1)
            ).first()
            if still_used is None:
                conn.execute(sa.delete(BLOBS).where(BLOBS.c.id == blob_id))
        # The guest entry last: until it goes, the rows above are parts of a guest copy, which
        # a carve's seal on this cell lets through (exchange.GUEST_PARTS).
        conn.execute(sa.delete(GUESTS).where(GUESTS.c.video_id == video_id))
        log.append(
            conn,
            run_id=run_id,
            direction="received",
            origin=g.origin_cell,
            receiver=receiver.name,
            video_id=video_id,
            action="withdrawn",
            nbytes=0,
            outcome=reason,
        )
        named = conn.execute(
            sa.select(BLOBS.c.id).where(BLOBS.c.sha256 == g.sha256).limit(1)
        ).first()
        more = conn.execute(
            sa.select(GUESTS.c.video_id).where(GUESTS.c.creator_id == g.creator_id).limit(1)
        ).first()
    if more is None:
        # The creator's last copy here: their handle becomes unreadable everywhere.
        handles.forget(receiver, g.creator_id, g.origin_domicile, run_id)
    if named is None and receiver.blobs.delete(g.sha256):
        return int(g.size_bytes)
    return 0
