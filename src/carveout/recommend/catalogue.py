"""A cell's servable catalogue in memory, kept current by reading only what changed.

The first read loads every published video; later reads (at most every `ttl_s`) fetch videos
created since the newest one seen, minus a grace period that catches uploads published by
moderation after their creation, and the restrictions table (small). Status changes of older
videos are caught where the feed hydrates its page (it re-reads those rows), so a rejected video
never shows. Trending heat is folded in from events logged since the last read."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.datamap import TABLES
from carveout.videos import VideoStatus

VIDEOS = TABLES["videos"]
EVENTS = TABLES["events"]
RESTRICTIONS = TABLES["video_restrictions"]
TTL_S = 0.5  # a new upload is a candidate within half a second
GRACE_MS = 15 * 60 * 1000  # uploads published up to this long after creation are still found
TRENDING_WINDOW_MS = 24 * 3600 * 1000
TOP = 500
ARRIVALS = 100_000  # recent uploads kept for the exploration slots
HEAT = {"watch": 1.0, "like": 3.0, "comment": 3.0, "share": 5.0}


@dataclass(frozen=True)
class VideoInfo:
    creator_id: str
    created_at: int
    category: str | None
    hashtags: str | None


@lru_cache(maxsize=65536)
def video_groups(category: str | None, hashtags: str | None) -> dict[str, tuple[str, ...]]:
    """A cell's video as group keys: its category (level 1) and hashtags (tags)."""
    tags = json.loads(hashtags or "[]")
    out: dict[str, tuple[str, ...]] = {"tag": tuple(f"tag:{t}" for t in tags)}
    if category:
        out["c1"] = (f"c1:{category}",)
    return out


@dataclass
class Catalogue:
    cell: Cell
    ttl_s: float = TTL_S
    videos: dict[str, VideoInfo] = field(default_factory=dict)
    by_creator: dict[str, list[str]] = field(default_factory=dict)  # oldest first
    restricted: dict[str, set[str]] = field(default_factory=dict)  # jurisdiction -> video ids
    heat: dict[str, float] = field(default_factory=dict)
    heat_log: deque[tuple[int, str, float]] = field(default_factory=deque)
    arrivals: deque[str] = field(default_factory=lambda: deque(maxlen=ARRIVALS))  # newest last
    top: list[str] = field(default_factory=list)  # trending, hottest first, as of the last read
    newest_ms: int = 0
    last_event_id: str = ""
    loaded_at: float = float("-inf")

    def refresh(self, now_ms: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.loaded_at <= self.ttl_s:
            return
        self.loaded_at = now
        since = self.newest_ms - GRACE_MS if self.videos else None
        stmt = sa.select(
            VIDEOS.c.id,
            VIDEOS.c.creator_id,
            VIDEOS.c.created_at,
            VIDEOS.c.category,
            VIDEOS.c.hashtags,
        ).where(VIDEOS.c.status == VideoStatus.PUBLISHED.value)
        stmt = stmt.order_by(VIDEOS.c.created_at)
        if since is not None:
            stmt = stmt.where(VIDEOS.c.created_at >= since)
        with self.cell.store.connect() as conn:
            rows = conn.execute(stmt).all()
            restricted: dict[str, set[str]] = {}
            for vid, code in conn.execute(
                sa.select(RESTRICTIONS.c.video_id, RESTRICTIONS.c.jurisdiction)
            ):
                restricted.setdefault(code, set()).add(vid)
            self._fold_events(conn, now_ms)
        for r in rows:
            if r.id in self.videos:
                continue
            self.videos[r.id] = VideoInfo(r.creator_id, r.created_at, r.category, r.hashtags)
            self.by_creator.setdefault(r.creator_id, []).append(r.id)
            self.newest_ms = max(self.newest_ms, r.created_at)
            if r.created_at >= now_ms - TRENDING_WINDOW_MS:
                self.arrivals.append(r.id)
        self.restricted = restricted
        ranked = sorted(self.heat.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        self.top = [vid for vid, _h in ranked]

    def _fold_events(self, conn: sa.Connection, now_ms: int) -> None:
        stmt = sa.select(EVENTS.c.id, EVENTS.c.video_id, EVENTS.c.kind, EVENTS.c.created_at)
        if self.last_event_id:
            stmt = stmt.where(EVENTS.c.id > self.last_event_id)
        else:
            stmt = stmt.where(EVENTS.c.created_at >= now_ms - TRENDING_WINDOW_MS)
        stmt = stmt.where(EVENTS.c.kind.in_(list(HEAT))).order_by(EVENTS.c.id)
        for r in conn.execute(stmt):
            weight = HEAT[r.kind]
            self.heat[r.video_id] = self.heat.get(r.video_id, 0.0) + weight
            self.heat_log.append((r.created_at, r.video_id, weight))
            self.last_event_id = r.id
        while self.heat_log and self.heat_log[0][0] < now_ms - TRENDING_WINDOW_MS:
            _at, vid, weight = self.heat_log.popleft()
            left = self.heat.get(vid, 0.0) - weight
            if left <= 1e-9:
                self.heat.pop(vid, None)
            else:
                self.heat[vid] = left

    def groups(self, video: str) -> dict[str, tuple[str, ...]]:
        info = self.videos.get(video)
        return video_groups(info.category, info.hashtags) if info else {}

    def trending(self, n: int) -> list[str]:
        return [vid for vid in self.top[:n] if vid in self.videos]
