"""The simple For You ranking: videos popular in the cell that the user has not watched yet.

Popularity is video_stats.popularity, the shrunk mean watch ratio that event ingest keeps up to
date; reading the (popularity, video_id) index in order lets a page stop after `limit` hits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from carveout.accounts import User
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.datamap import TABLES
from carveout.recommend.models import FeedItem
from carveout.storage import Store
from carveout.videos import Video, VideoStatus

VIDEOS = TABLES["videos"]
STATS = TABLES["video_stats"]
EVENTS = TABLES["events"]
RESTRICTIONS = TABLES["video_restrictions"]


def feed(store: Store, user: User, cursor: str | None, limit: int) -> Page[FeedItem]:
    limit = check_limit(limit)
    after = decode_cursor(cursor, "feed")
    score = STATS.c.popularity
    watched = sa.exists().where(
        EVENTS.c.user_id == user.id,
        EVENTS.c.kind == "watch",
        EVENTS.c.video_id == STATS.c.video_id,
    )
    restricted = sa.exists().where(
        RESTRICTIONS.c.video_id == STATS.c.video_id, RESTRICTIONS.c.jurisdiction == user.domicile
    )
    stmt = (
        sa.select(VIDEOS, score.label("score"))
        .select_from(STATS.join(VIDEOS, VIDEOS.c.id == STATS.c.video_id))
        .where(
            VIDEOS.c.status == VideoStatus.PUBLISHED.value,
            VIDEOS.c.creator_id != user.id,
            ~watched,
            ~restricted,
        )
    )
    if after:
        last_score, last_id = float(after[0]), str(after[1])
        stmt = stmt.where(
            sa.or_(score < last_score, sa.and_(score == last_score, STATS.c.video_id < last_id))
        )
    # Both keys descending: one backward walk of the (popularity, video_id) index.
    stmt = stmt.order_by(score.desc(), STATS.c.video_id.desc()).limit(limit + 1)
    with store.connect() as conn:
        rows: Sequence[Any] = conn.execute(stmt).all()
    items = [FeedItem(Video.from_row(r), "popular", float(r.score)) for r in rows[:limit]]
    nxt = encode_cursor("feed", items[-1].score, items[-1].video.id) if len(rows) > limit else None
    return Page(items, nxt)
