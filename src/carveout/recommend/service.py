"""The For You feed of a cell: candidates, its trained ranker, online state, re-rank, fallback.

Per cell, one `CellRecommender` holds the newest acceptable model version, the catalogue and
each user's state. A user's state is rebuilt from the cell's event log on first use, then caught
up with the events logged since (by id, UUIDv7) on every request: an acknowledged event shows in
the next feed. Each request ranks a few hundred candidates, never the whole catalogue."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from carveout.accounts import User, consent
from carveout.cells import Cell
from carveout.cells.policy import Policy
from carveout.core import NotFound, now_ms
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.datamap import TABLES
from carveout.recommend import artefact, candidates
from carveout.recommend.artefact import ArtefactRefused, Manifest
from carveout.recommend.candidates import CandidateModel, Viewer, centroid
from carveout.recommend.catalogue import Catalogue
from carveout.recommend.models import FeedItem
from carveout.recommend.popular import feed as popular_feed
from carveout.recommend.ranker import Ranker, UserState
from carveout.recommend.rerank import Candidate, interleave
from carveout.videos import Video, VideoStatus

log = logging.getLogger(__name__)
EVENTS = TABLES["events"]
VIDEOS = TABLES["videos"]
USERS = TABLES["users"]
FOLLOWS = TABLES["follows"]
EXPLORE_SHARE = 0.1
FALLBACK_SOURCE = "popular (no model)"
NOT_PERSONAL_SOURCE = "popular (personalisation withdrawn)"
MAX_FOLLOWEES = 500


@dataclass
class _UserEntry:
    state: UserState
    last_event_id: str = ""


@dataclass
class CellRecommender:
    cell: Cell
    policy: Policy | None = None
    ranker: Ranker | None = None
    model: CandidateModel | None = None
    manifest: Manifest | None = None
    refused: dict[str, str] = field(default_factory=dict)  # version -> why
    users: dict[str, _UserEntry] = field(default_factory=dict)
    catalogue: Catalogue | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh_model(self) -> None:
        """Serve the newest version that passes the checks; a refused one is logged and skipped."""
        for path in artefact.versions(self.cell):
            if self.manifest is not None and path.name <= self.manifest.version:
                return  # nothing newer than what is served
            if path.name in self.refused:
                continue
            try:
                loaded = artefact.load_version(path, self.cell.spec, self.policy)
            except ArtefactRefused as exc:
                self.refused[path.name] = str(exc)
                log.error("recommend: %s; serving continues on the previous model", exc)
                continue
            if self.manifest is not None:
                self.users.clear()  # residuals depend on the prior: rebuild from the log
            self.ranker, self.manifest = loaded.ranker, loaded.manifest
            self.model = (
                loaded.candidates.with_popular(loaded.ranker) if loaded.candidates else None
            )
            _settle()
            return

    def cat(self) -> Catalogue:
        if self.catalogue is None:
            self.catalogue = Catalogue(self.cell)
            self.catalogue.refresh(now_ms())
            _settle()
        self.catalogue.refresh(now_ms())
        return self.catalogue

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
        cat = self.cat()
        for r in rows:
            ratio = r.watched_ms / r.duration_ms if r.duration_ms else 0.0
            self.ranker.observe(
                entry.state, r.video_id, ratio, {r.video_id: cat.groups(r.video_id)}
            )
            entry.last_event_id = r.id
        return entry.state

    def viewer(self, user: User, cat: Catalogue) -> Viewer:
        with self.cell.store.connect() as conn:
            followees = list(
                conn.execute(
                    sa.select(FOLLOWS.c.followee_id)
                    .where(FOLLOWS.c.follower_id == user.id)
                    .limit(MAX_FOLLOWEES)
                ).scalars()
            )
        return Viewer(user.id, cat.restricted.get(user.domicile, set()), followees)

    def rank(self, user: User, n: int, explore_share: float, now: int) -> list[Candidate]:
        """The user's best n: ranked candidates, with exploration slots for fresh videos."""
        assert self.ranker is not None
        state = self.state(user)
        cat = self.cat()
        viewer = self.viewer(user, cat)
        found = candidates.generate(self.model, cat, state, viewer)
        explore_n = int(n * explore_share) + 1 if explore_share > 0 else 0
        fresh_ids = candidates.fresh(self.ranker, cat, state, viewer, now, explore_n)
        for vid in fresh_ids:
            found.pop(vid, None)
        ids = list(found)
        infos = cat.videos
        groups = {v: infos[v].groups for v in ids + fresh_ids}
        scores = self.ranker.score(state, ids, groups)
        ranked = [
            Candidate(v, infos[v].creator_id, found[v], s, infos[v].category)
            for v, s in _best(ids, scores, n)
        ]
        fresh_scores = self.ranker.score(state, fresh_ids, groups).tolist()
        fresh = [
            Candidate(v, infos[v].creator_id, "explore", s, infos[v].category)
            for v, s in zip(fresh_ids, fresh_scores, strict=True)
        ]
        return interleave(ranked, fresh, explore_share, n)


def _settle() -> None:
    """After loading a model version or a catalogue: a big cell's are millions of objects, and
    every full collection of the cyclic garbage collector would walk them all again — pauses
    of a second or more at 1M videos, on whichever request triggers it. Frozen, they are left
    out of collections (reference counting still frees a replaced version)."""
    gc.collect()
    gc.freeze()


def _best(ids: list[str], scores: np.ndarray, n: int) -> list[tuple[str, float]]:
    """The n best (id, score), by score then id: the order of sorting them all, but only the
    few that can make the page are sorted in Python (ties at the cut are all kept)."""
    if len(ids) > n > 0:
        cut = np.partition(scores, len(ids) - n)[len(ids) - n]
        keep = np.flatnonzero(scores >= cut).tolist()
    else:
        keep = list(range(len(ids)))
    out = [(ids[i], float(scores[i])) for i in keep]
    out.sort(key=lambda t: (-t[1], t[0]))
    return out[:n] if n > 0 else out


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
    personal = consent.allows(cell.store, user.id, consent.Purpose.PERSONALISATION)
    rec = recommender(cell, policy)
    with rec.lock:
        rec.refresh_model()
        if not personal:
            rec.users.pop(user.id, None)  # nothing personal is kept while it is withdrawn
        if rec.ranker is None or not personal:
            page = popular_feed(cell.store, user, cursor, limit)
            why = FALLBACK_SOURCE if personal else NOT_PERSONAL_SOURCE
            items = [FeedItem(i.video, why, i.score) for i in page.items]
            return Page(items, page.next_cursor)
        after = decode_cursor(cursor, "foryou")
        offset = int(after[0]) if after else 0
        picked = rec.rank(user, offset + limit + 1, explore_share, now_ms())
    page_items = picked[offset : offset + limit]
    with cell.store.connect() as conn:
        rows = conn.execute(
            sa.select(VIDEOS).where(VIDEOS.c.id.in_([c.video_id for c in page_items]))
        ).all()
    # Re-read rows: a video rejected or restricted since the catalogue loaded it is dropped here.
    found = {r.id: Video.from_row(r) for r in rows if r.status == VideoStatus.PUBLISHED.value}
    items = [
        FeedItem(found[c.video_id], c.source, c.score) for c in page_items if c.video_id in found
    ]
    more = len(picked) > offset + limit
    return Page(items, encode_cursor("foryou", offset + limit) if more else None)


def forget_user(cell: Cell, user_id: str) -> bool:
    """Drop one user's in-memory state (erasure): True if this process held any."""
    with _REGISTRY_LOCK:
        rec = _REGISTRY.get(cell.root)
    if rec is None:
        return False
    with rec.lock:
        return rec.users.pop(user_id, None) is not None


def describe_user(cell: Cell, user: User, top: int = 20) -> dict[str, Any]:
    """What the recommender holds about a user, for their access export: the model serving
    them, the videos it knows they watched, inferred interests (mean watch-ratio residual per
    category, creator or tag: above 0 = watched longer than typical) and their taste vector."""
    rec = recommender(cell)
    with rec.lock:
        rec.refresh_model()
        if rec.ranker is None or rec.manifest is None:
            return {"model": None, "note": "no model: the feed is by popularity, not personal"}
        state = rec.state(user)
        vec = centroid(rec.model, state) if rec.model is not None else None
        interests = sorted(
            ((k, state.residual[k] / state.count[k]) for k in state.residual if state.count[k]),
            key=lambda kv: -abs(kv[1]),
        )[:top]
        return {
            "model": rec.manifest.version,
            "watch_events_seen": state.events,
            "watched_videos": sorted(state.watched),
            "inferred_interests": {k: round(v, 4) for k, v in interests},
            "taste_vector": [round(float(x), 5) for x in vec] if vec is not None else None,
        }
