"""Trending in the cell: most engagement in a recent window (likes and shares weigh more)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from carveout.accounts import User
from carveout.core import now_ms
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.datamap import TABLES
from carveout.recommend.models import FeedItem
from carveout.storage import Store
from carveout.videos import Video, VideoStatus

VIDEOS = TABLES["videos"]
EVENTS = TABLES["events"]
RESTRICTIONS = TABLES["video_restrictions"]
WINDOW_MS = 24 * 3600 * 1000
WEIGHTS = {"watch": 1.0, "like": 3.0, "comment": 3.0, "share": 5.0}


def trending(
    store: Store, viewer: User, cursor: str | None, limit: int, window_ms: int = WINDOW_MS
) -> Page[FeedItem]:
    limit = check_limit(limit)
    after = decode_cursor(cursor, "trending")
    weight = sa.case(*((EVENTS.c.kind == k, w) for k, w in WEIGHTS.items()), else_=0.0)
    engagement = (
        sa.select(EVENTS.c.video_id, sa.func.sum(weight).label("heat"))
        .where(EVENTS.c.created_at >= now_ms() - window_ms)
        .group_by(EVENTS.c.video_id)
        .subquery()
    )
    restricted = sa.exists().where(
        RESTRICTIONS.c.video_id == VIDEOS.c.id, RESTRICTIONS.c.jurisdiction == viewer.domicile
    )
    heat = engagement.c.heat
    stmt = (
        sa.select(VIDEOS, heat)
        .join(engagement, engagement.c.video_id == VIDEOS.c.id)
        .where(VIDEOS.c.status == VideoStatus.PUBLISHED.value, ~restricted, heat > 0)
    )
    if after:
        last_heat, last_id = float(after[0]), str(after[1])
        stmt = stmt.where(
            sa.or_(heat < last_heat, sa.and_(heat == last_heat, VIDEOS.c.id > last_id))
        )
    stmt = stmt.order_by(heat.desc(), VIDEOS.c.id).limit(limit + 1)
    with store.connect() as conn:
        rows: Sequence[Any] = conn.execute(stmt).all()
    items = [FeedItem(Video.from_row(r), "trending", float(r.heat)) for r in rows[:limit]]
    nxt = (
        encode_cursor("trending", items[-1].score, items[-1].video.id)
        if len(rows) > limit
        else None
    )
    return Page(items, nxt)
