"""A cell's servable catalogue in memory, kept current by reading only what changed.

The first read loads every published video; later reads (at most every `ttl_s`) fetch videos
created since a few seconds before the newest one seen, and every `GRACE_EVERY_S` since a grace
period before it, which catches uploads published by moderation after their creation (reading
the whole grace period on every read cost a busy cell thousands of rows twice a second, on the
request path), and the restrictions table (small). Status changes of older
videos are caught where the feed hydrates its page (it re-reads those rows), so a rejected video
never shows. Trending heat is folded in from events logged since the last read."""

from __future__ import annotations

import heapq
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
GRACE_EVERY_S = 2.0  # ... within this long of their publication
HEAD_MS = 5_000  # uploads committed out of creation order by up to this much are found at once
TRENDING_WINDOW_MS = 24 * 3600 * 1000
TOP = 500
ARRIVALS = 100_000  # recent uploads kept for the exploration slots
HEAT = {"watch": 1.0, "like": 3.0, "comment": 3.0, "share": 5.0}


@dataclass(frozen=True, slots=True)  # slots: a million of these at catalogue scale
class VideoInfo:
    creator_id: str
    created_at: int
    category: str | None
    hashtags: str | None
    # The ranker's group keys, shared by every video of the same category and hashtags: read
    # for each candidate of each request, so worked out once here.
    groups: dict[str, tuple[str, ...]]


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
    grace_at: float = float("-inf")

    def refresh(self, now_ms: int, force: bool = False) -> list[str]:
        """Read what changed (at most every ttl_s unless forced): the ids of videos added."""
        now = time.monotonic()
        if not force and now - self.loaded_at <= self.ttl_s:
            return []
        self.loaded_at = now
        since: int | None = None  # None: everything (the first read)
        if not self.videos:
            self.grace_at = now
        elif now - self.grace_at >= GRACE_EVERY_S:
            since, self.grace_at = self.newest_ms - GRACE_MS, now
        else:
            since = self.newest_ms - HEAD_MS
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
            heat_changed = self._fold_events(conn, now_ms)
        added: list[str] = []
        for r in rows:
            if r.id in self.videos:
                continue
            added.append(r.id)
            self.videos[r.id] = VideoInfo(
                r.creator_id,
                r.created_at,
                r.category,
                r.hashtags,
                video_groups(r.category, r.hashtags),
            )
            self.by_creator.setdefault(r.creator_id, []).append(r.id)
            self.newest_ms = max(self.newest_ms, r.created_at)
            if r.created_at >= now_ms - TRENDING_WINDOW_MS:
                self.arrivals.append(r.id)
        self.restricted = restricted
        if heat_changed:
            # Only when heat moved: this runs on the request that finds the catalogue stale,
            # and the heat of a busy cell's day holds many thousands of videos.
            ranked = heapq.nsmallest(TOP, self.heat.items(), key=lambda kv: (-kv[1], kv[0]))
            self.top = [vid for vid, _h in ranked]
        return added

    def _fold_events(self, conn: sa.Connection, now_ms: int) -> bool:
        """Fold new engagement into the heat and expire what left the window: True if it moved."""
        changed = False
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
            changed = True
        while self.heat_log and self.heat_log[0][0] < now_ms - TRENDING_WINDOW_MS:
            changed = True
            _at, vid, weight = self.heat_log.popleft()
            left = self.heat.get(vid, 0.0) - weight
            if left <= 1e-9:
                self.heat.pop(vid, None)
            else:
                self.heat[vid] = left
        return changed

    def groups(self, video: str) -> dict[str, tuple[str, ...]]:
        info = self.videos.get(video)
        return info.groups if info else {}

    def trending(self, n: int) -> list[str]:
        return [vid for vid in self.top[:n] if vid in self.videos]
