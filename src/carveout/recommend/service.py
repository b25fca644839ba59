"""The For You feed of a cell: its trained ranker, per-user online state, re-rank and fallback.

Per cell, one `CellRecommender` holds the newest acceptable model version and each user's state.
A user's state is rebuilt from the cell's event log on first use, then caught up with the events
logged since (by id, UUIDv7) on every request: an acknowledged event shows in the next feed."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from carveout.accounts import User
from carveout.cells import Cell
from carveout.cells.policy import Policy
from carveout.core import NotFound, now_ms
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.datamap import TABLES
from carveout.recommend import artefact
from carveout.recommend.artefact import ArtefactRefused, Manifest
from carveout.recommend.models import FeedItem
from carveout.recommend.popular import feed as popular_feed
from carveout.recommend.ranker import Ranker, UserState
from carveout.recommend.rerank import Candidate, interleave
from carveout.recommend.training import video_groups
from carveout.videos import Video, VideoStatus

log = logging.getLogger(__name__)
EVENTS = TABLES["events"]
VIDEOS = TABLES["videos"]
USERS = TABLES["users"]
RESTRICTIONS = TABLES["video_restrictions"]
CATALOGUE_TTL_S = 0.5  # a new upload is a candidate within half a second
FRESH_MS = 24 * 3600 * 1000  # videos younger than this, unknown to the model, get explored
EXPLORE_SHARE = 0.1
FALLBACK_SOURCE = "popular (no model)"


@dataclass
class _Catalogue:
    loaded_at: float
    videos: list[tuple[str, str, int]]  # (id, creator_id, created_at) of published videos
    groups: dict[str, dict[str, tuple[str, ...]]]
    restricted: dict[str, set[str]]  # jurisdiction -> video ids


@dataclass
class _UserEntry:
    state: UserState
    last_event_id: str = ""


@dataclass
class CellRecommender:
    cell: Cell
    policy: Policy | None = None
    ranker: Ranker | None = None
    manifest: Manifest | None = None
    refused: dict[str, str] = field(default_factory=dict)  # version -> why
    users: dict[str, _UserEntry] = field(default_factory=dict)
    catalogue: _Catalogue | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh_model(self) -> None:
        """Serve the newest version that passes the checks; a refused one is logged and skipped."""
        for path in artefact.versions(self.cell):
            if self.manifest is not None and path.name <= self.manifest.version:
                return  # nothing newer than what is served
            if path.name in self.refused:
                continue
            try:
                ranker, manifest = artefact.load(path, self.cell.spec, self.policy)
            except ArtefactRefused as exc:
                self.refused[path.name] = str(exc)
                log.error("recommend: %s; serving continues on the previous model", exc)
                continue
            if self.manifest is not None:
                self.users.clear()  # residuals depend on the prior: rebuild from the log
            self.ranker, self.manifest = ranker, manifest
            return

    def state(self, user: User) -> UserState:
        """The user's state, caught up with every watch event logged so far."""
        assert self.ranker is not None
        entry = self.users.setdefault(user.id, _UserEntry(UserState()))
        stmt = (
            sa.select(EVENTS.c.id, EVENTS.c.video_id, EVENTS.c.watched_ms, VIDEOS.c.duration_ms)
            .select_from(EVENTS.join(VIDEOS, VIDEOS.c.id == EVENTS.c.video_id))
            .where(EVENTS.c.user_id == user.id, EVENTS.c.kind == "watch")
            .where(EVENTS.c.id > entry.last_event_id)
            .order_by(EVENTS.c.id)
        )
        with self.cell.store.connect() as conn:
            rows = conn.execute(stmt).all()
        groups = self._catalogue().groups
        for r in rows:
            ratio = r.watched_ms / r.duration_ms if r.duration_ms else 0.0
            self.ranker.observe(entry.state, r.video_id, ratio, groups)
            entry.last_event_id = r.id
        return entry.state

    def _catalogue(self) -> _Catalogue:
        now = time.monotonic()
        if self.catalogue is None or now - self.catalogue.loaded_at > CATALOGUE_TTL_S:
            with self.cell.store.connect() as conn:
                rows = conn.execute(
                    sa.select(
                        VIDEOS.c.id,
                        VIDEOS.c.creator_id,
                        VIDEOS.c.created_at,
                        VIDEOS.c.category,
                        VIDEOS.c.hashtags,
                    ).where(VIDEOS.c.status == VideoStatus.PUBLISHED.value)
                ).all()
                restricted: dict[str, set[str]] = {}
                for vid, code in conn.execute(
                    sa.select(RESTRICTIONS.c.video_id, RESTRICTIONS.c.jurisdiction)
                ):
                    restricted.setdefault(code, set()).add(vid)
            self.catalogue = _Catalogue(
                now,
                [(r.id, r.creator_id, r.created_at) for r in rows],
                {r.id: video_groups(r.category, r.hashtags) for r in rows},
                restricted,
            )
        return self.catalogue

    def rank(self, user: User, n: int, explore_share: float, now_ms: int) -> list[Candidate]:
        assert self.ranker is not None
        state = self.state(user)
        cat = self._catalogue()
        blocked = cat.restricted.get(user.domicile, set())
        pool = [
            v
            for v in cat.videos
            if v[0] not in state.watched and v[0] not in blocked and v[1] != user.id
        ]
        scores = self.ranker.score(state, [v[0] for v in pool], cat.groups)
        # Videos the model has never seen fill the exploration slots, so a new upload gets
        # its first impressions whatever its prior.
        ranked: list[Candidate] = []
        fresh: list[Candidate] = []
        for v, s in zip(pool, scores.tolist(), strict=True):
            if self.ranker.video_n.get(v[0], 0) == 0 and now_ms - v[2] <= FRESH_MS:
                fresh.append(Candidate(v[0], v[1], "explore", s))
            else:
                ranked.append(Candidate(v[0], v[1], "model", s))
        ranked.sort(key=lambda c: (-c.score, c.video_id))
        fresh.sort(key=lambda c: (-c.score, c.video_id))
        return interleave(ranked, fresh, explore_share, n)


_REGISTRY: dict[Path, CellRecommender] = {}
_REGISTRY_LOCK = threading.Lock()


def recommender(cell: Cell, policy: Policy | None = None) -> CellRecommender:
    with _REGISTRY_LOCK:
        rec = _REGISTRY.get(cell.root)
        if rec is None or rec.cell is not cell:
            rec = _REGISTRY[cell.root] = CellRecommender(cell, policy)
        return rec


def forget(cell: Cell) -> None:
    """Drop the cell's in-memory state (tests; a carve's purge)."""
    with _REGISTRY_LOCK:
        _REGISTRY.pop(cell.root, None)


def for_you(
    cell: Cell,
    user: User,
    cursor: str | None,
    limit: int,
    explore_share: float = EXPLORE_SHARE,
    policy: Policy | None = None,
) -> Page[FeedItem]:
    """The user's For You feed from the cell's model, or the popularity feed when it has none."""
    limit = check_limit(limit)
    with cell.store.connect() as conn:
        status = conn.execute(sa.select(USERS.c.status).where(USERS.c.id == user.id)).scalar()
    if status is None or status == "erased":
        raise NotFound("unknown user")
    rec = recommender(cell, policy)
    with rec.lock:
        rec.refresh_model()
        if rec.ranker is None:
            page = popular_feed(cell.store, user, cursor, limit)
            items = [FeedItem(i.video, FALLBACK_SOURCE, i.score) for i in page.items]
            return Page(items, page.next_cursor)
        after = decode_cursor(cursor, "foryou")
        offset = int(after[0]) if after else 0
        picked = rec.rank(user, offset + limit + 1, explore_share, now_ms())
    page_items = picked[offset : offset + limit]
    with cell.store.connect() as conn:
        rows = conn.execute(
            sa.select(VIDEOS).where(VIDEOS.c.id.in_([c.video_id for c in page_items]))
        ).all()
    found = {r.id: Video.from_row(r) for r in rows}
    items = [
        FeedItem(found[c.video_id], c.source, c.score) for c in page_items if c.video_id in found
    ]
    more = len(picked) > offset + limit
    return Page(items, encode_cursor("foryou", offset + limit) if more else None)
