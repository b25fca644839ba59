"""The simple For You ranking: videos popular in the cell that the user has not watched yet.

Popularity is the shrunk mean watch ratio: (sum of ratios + M * prior) / (watches + M). Shrinking
towards the cell's mean keeps a video with one lucky view from topping the feed."""

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
SHRINK_M = 10.0


def _prior(conn: sa.Connection) -> float:
    row = conn.execute(
        sa.select(sa.func.sum(STATS.c.watch_ratio_sum), sa.func.sum(STATS.c.watches))
    ).one()
    total, watches = row
    return float(total) / float(watches) if watches else 1.0


def feed(store: Store, user: User, cursor: str | None, limit: int) -> Page[FeedItem]:
    limit = check_limit(limit)
    after = decode_cursor(cursor, "feed")
    with store.connect() as conn:
        prior = _prior(conn)
        watches = sa.func.coalesce(STATS.c.watches, 0)
        ratio_sum = sa.func.coalesce(STATS.c.watch_ratio_sum, 0.0)
        score = ((ratio_sum + SHRINK_M * prior) / (watches + SHRINK_M)).label("score")
        watched = sa.exists().where(
            EVENTS.c.user_id == user.id,
            EVENTS.c.kind == "watch",
            EVENTS.c.video_id == VIDEOS.c.id,
        )
        restricted = sa.exists().where(
            RESTRICTIONS.c.video_id == VIDEOS.c.id, RESTRICTIONS.c.jurisdiction == user.domicile
        )
        stmt = (
            sa.select(VIDEOS, score)
            .select_from(VIDEOS.outerjoin(STATS, STATS.c.video_id == VIDEOS.c.id))
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
                sa.or_(score < last_score, sa.and_(score == last_score, VIDEOS.c.id > last_id))
            )
        stmt = stmt.order_by(score.desc(), VIDEOS.c.id).limit(limit + 1)
        rows: Sequence[Any] = conn.execute(stmt).all()
    items = [FeedItem(Video.from_row(r), "popular", float(r.score)) for r in rows[:limit]]
    nxt = encode_cursor("feed", items[-1].score, items[-1].video.id) if len(rows) > limit else None
    return Page(items, nxt)
