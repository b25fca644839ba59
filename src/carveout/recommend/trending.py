"""Trending in the cell: most engagement in a recent window (likes and shares weigh more)."""

from __future__ import annotations

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


def _heat(conn: sa.Connection, since: int) -> dict[str, float]:
    # Summed here rather than with GROUP BY: SQLite would then walk the video_id index over the
    # whole log instead of the created_at range that the window selects.
    heat: dict[str, float] = {}
    rows = conn.execute(
        sa.select(EVENTS.c.video_id, EVENTS.c.kind).where(
            EVENTS.c.created_at >= since, EVENTS.c.kind.in_(list(WEIGHTS))
        )
    )
    for video_id, kind in rows:
        heat[video_id] = heat.get(video_id, 0.0) + WEIGHTS[kind]
    return heat


def trending(
    store: Store, viewer: User, cursor: str | None, limit: int, window_ms: int = WINDOW_MS
) -> Page[FeedItem]:
    limit = check_limit(limit)
    after = decode_cursor(cursor, "trending")
    with store.connect() as conn:
        heat = _heat(conn, now_ms() - window_ms)
        blocked = {
            r[0]
            for r in conn.execute(
                sa.select(RESTRICTIONS.c.video_id).where(
                    RESTRICTIONS.c.jurisdiction == viewer.domicile
                )
            )
        }
        ranked = sorted(
            ((h, vid) for vid, h in heat.items() if vid not in blocked), key=lambda t: (-t[0], t[1])
        )
        if after:
            key = (-float(after[0]), str(after[1]))
            ranked = [t for t in ranked if (-t[0], t[1]) > key]
        picked: list[tuple[float, Video]] = []
        # Fetch in slices: some ranked ids may be unpublished by now and are skipped.
        while ranked and len(picked) <= limit:
            batch, ranked = ranked[: limit * 2], ranked[limit * 2 :]
            rows = conn.execute(
                sa.select(VIDEOS).where(
                    VIDEOS.c.id.in_([vid for _, vid in batch]),
                    VIDEOS.c.status == VideoStatus.PUBLISHED.value,
                )
            ).all()
            found = {r.id: Video.from_row(r) for r in rows}
            picked += [(h, found[vid]) for h, vid in batch if vid in found]
    items = [FeedItem(v, "trending", h) for h, v in picked[:limit]]
    nxt = (
        encode_cursor("trending", items[-1].score, items[-1].video.id)
        if len(picked) > limit
        else None
    )
    return Page(items, nxt)
