"""The For You feed of a cell: its recommender (cell_recommender.py), or the popularity feed
while it has no model or the user withdrew consent to personalisation.

Per cell, one `CellRecommender` holds the newest acceptable model version, the catalogue and
each user's state. A user's state is rebuilt from the cell's event log on first use, then caught
up with the events logged since (by id, UUIDv7) on every request: an acknowledged event shows in
the next feed. Each request ranks a few hundred candidates, never the whole catalogue."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from carveout.accounts import User, consent
from carveout.cells import Cell
from carveout.cells.policy import Policy
from carveout.core import NotFound, now_ms
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.datamap import TABLES
from carveout.recommend.candidates import centroid
from carveout.recommend.cell_recommender import CellRecommender
from carveout.recommend.models import FeedItem
from carveout.recommend.popular import feed as popular_feed
from carveout.videos import Video, VideoStatus

VIDEOS = TABLES["videos"]
USERS = TABLES["users"]
EXPLORE_SHARE = 0.1
FALLBACK_SOURCE = "popular (no model)"
NOT_PERSONAL_SOURCE = "popular (personalisation withdrawn)"

# Statements built once (see cell_recommender.py).
_STATUS = sa.select(USERS.c.status).where(USERS.c.id == sa.bindparam("user_id"))
_VIDEOS_BY_ID = sa.select(VIDEOS).where(VIDEOS.c.id.in_(sa.bindparam("ids", expanding=True)))

_REGISTRY: dict[Path, CellRecommender] = {}
_REGISTRY_LOCK = threading.Lock()


def recommender(cell: Cell, policy: Policy | None = None) -> CellRecommender:
    with _REGISTRY_LOCK:
        rec = _REGISTRY.get(cell.root)
        if rec is None or rec.cell is not cell:
            rec = _REGISTRY[cell.root] = CellRecommender(cell, policy)
        return rec


def model_saved(cell: Cell) -> None:
    """A version was just saved in this process (a retrain): the cell's recommender, if this
    process serves it, starts loading it now instead of at its next request."""
    with _REGISTRY_LOCK:
        rec = _REGISTRY.get(cell.root)
    if rec is None:
        return  # nothing served here yet: the first request loads the newest version
    with rec.lock:
        if rec._tried and rec._newer():
            rec._start_loader()


def forget(cell: Cell) -> None:
    """Drop the cell's in-memory state (tests; a carve's purge)."""
    with _REGISTRY_LOCK:
        _REGISTRY.pop(cell.root, None)


def warm(cell: Cell, policy: Policy | None = None) -> bool:
    """Load the cell's newest model version, its catalogue and serving index now, as the
    first feed request would (a server's start-up: no request then waits for a process's first
    load). True if a model serves; False leaves the popularity fallback until one is trained."""
    rec = recommender(cell, policy)
    with rec.lock:
        rec.refresh_model()
        if rec.ranker is None:
            return False
        cat = rec.cat()
        if rec.model is not None:
            rec.serving_index(rec.model, cat)
    return True


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
        status = conn.execute(_STATUS, {"user_id": user.id}).scalar()
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
        rows = conn.execute(_VIDEOS_BY_ID, {"ids": [c.video_id for c in page_items]}).all()
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
