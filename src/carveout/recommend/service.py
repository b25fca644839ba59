"""The For You feed of a cell: candidates, its trained ranker, online state, re-rank, fallback.

Per cell, one `CellRecommender` holds the newest acceptable model version, the catalogue and
each user's state. A user's state is rebuilt from the cell's event log on first use, then caught
up with the events logged since (by id, UUIDv7) on every request: an acknowledged event shows in
the next feed. Each request ranks a few hundred candidates, never the whole catalogue."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from carveout.recommend.loading import Prepared, prepare
from carveout.recommend.models import FeedItem
from carveout.recommend.pool import SOURCES, Pool, ServingIndex, gather, row_scores
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

# The request path's statements, built once: building a select per request cost more CPU than
# SQLite spent answering it (SQLAlchemy reuses the compiled form either way).
_STATUS = sa.select(USERS.c.status).where(USERS.c.id == sa.bindparam("user_id"))
_WATCHES_SINCE = (
    sa.select(EVENTS.c.id, EVENTS.c.video_id, EVENTS.c.watched_ms, VIDEOS.c.duration_ms)
    .select_from(EVENTS.join(VIDEOS, VIDEOS.c.id == EVENTS.c.video_id))
    .where(EVENTS.c.user_id == sa.bindparam("user_id"), EVENTS.c.kind == "watch")
    .where(EVENTS.c.id > sa.bindparam("after"))
    .order_by(EVENTS.c.id)
)
_FOLLOWEES = (
    sa.select(FOLLOWS.c.followee_id)
    .where(FOLLOWS.c.follower_id == sa.bindparam("user_id"))
    .limit(MAX_FOLLOWEES)
)
_VIDEOS_BY_ID = sa.select(VIDEOS).where(VIDEOS.c.id.in_(sa.bindparam("ids", expanding=True)))


@dataclass
class _UserEntry:
    state: UserState
    last_event_id: str = ""
    watched_rows: list[int] = field(default_factory=list)  # in the served model


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
    serving: ServingIndex | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    # Called in the loader thread once a version is loaded and its index built, just before
    # the swap (tests hold a load there to see requests served meanwhile; the bench times it).
    before_swap: Callable[[Manifest], None] | None = None
    _loader: threading.Thread | None = None
    _arrived: list[str] | None = None  # catalogue additions while a loader builds its index
    _tried: bool = False  # a first load was attempted in this process

    def refresh_model(self) -> None:
        """Start loading a newer version in the background, if there is one (under the lock).

        Requests go on with what is served (a model, or the fallback) until the loader swaps
        the new version in. Only a process that has not tried to load any version yet loads on
        the request (it has nothing older to serve): its first request waits for the load."""
        if not self._tried:
            self._tried = True
            self.load_now()
        elif self._newer():
            self._start_loader()

    def _newer(self) -> list[Path]:
        """Versions newer than the served one and not refused, newest first."""
        served = self.manifest.version if self.manifest is not None else ""
        return [
            p
            for p in artefact.versions(self.cell)
            if p.name > served and p.name not in self.refused
        ]

    def load_now(self) -> None:
        """Load the newest acceptable version in this thread, under the lock the caller holds:
        the request path's way before loading moved off it (the feed bench measures it as the
        old behaviour), and a process's first load."""
        for path in self._newer():
            try:
                ready = prepare(path, self.cell.spec, self.policy, None)
            except ArtefactRefused as exc:
                self._refuse(path, exc)
                continue
            self._swap(ready)
            _settle()
            return

    def _refuse(self, path: Path, exc: ArtefactRefused) -> None:
        self.refused[path.name] = str(exc)
        log.error("recommend: %s; serving continues on the previous model", exc)

    def _start_loader(self) -> None:
        if self._loader is not None and self._loader.is_alive():
            return  # it picks up anything newer when it finishes
        self._arrived = []
        self._loader = threading.Thread(
            target=self._load_in_background, name=f"model-load-{self.cell.name}", daemon=True
        )
        self._loader.start()

    def _load_in_background(self) -> None:
        with self.lock:
            newer, catalogue = self._newer(), self.catalogue
        for path in newer:
            try:
                with _collections_paused():
                    ready = prepare(path, self.cell.spec, self.policy, catalogue)
                    # Out of every later collection, and without one now: see _collections_paused.
                    gc.freeze()
            except ArtefactRefused as exc:
                with self.lock:
                    self._refuse(path, exc)
                continue
            except Exception:
                # Not a refusal the checks named (out of memory, a bug): logged and not retried
                # on every request; the previous version keeps serving.
                log.exception("recommend: loading model %s failed", path.name)
                with self.lock:
                    self.refused[path.name] = "failed to load"
                continue
            if self.before_swap is not None:
                self.before_swap(ready.manifest)
            with self.lock:
                if self.manifest is not None and self.manifest.version >= path.name:
                    break  # something as new was served meanwhile
                old = self._swap(ready)
            del old  # the old version is freed here, outside the lock
            break
        with self.lock:
            self._arrived = None
            again = bool(self._newer())
            self._loader = None
        if again:  # a version saved while this one loaded
            with self.lock:
                self._start_loader()

    def _swap(self, ready: Prepared) -> tuple[object, ...]:
        """Serve `ready` from now on (caller holds the lock); returns the old version's parts so
        that the caller can drop them after releasing the lock."""
        old = (self.ranker, self.model, self.serving, self.users)
        serving = ready.serving
        if serving is not None:
            if serving.catalogue is self.catalogue:
                serving.add(self._arrived or [])  # uploads read while the index was built
            else:
                serving = None  # the catalogue was replaced meanwhile: built on next use
        if self.manifest is not None:
            self.users = {}  # residuals depend on the prior: rebuilt from the log
        self.ranker, self.manifest, self.model = ready.ranker, ready.manifest, ready.model
        self.serving = serving
        return old

    def wait_for_loader(self, timeout: float | None = None) -> bool:
        """Wait until no background load runs (tests, the bench): False on timeout."""
        with self.lock:
            loader = self._loader
        if loader is not None:
            loader.join(timeout)
            return not loader.is_alive()
        return True

    def cat(self) -> Catalogue:
        if self.catalogue is None:
            self.catalogue = Catalogue(self.cell)
            self.catalogue.refresh(now_ms())
            _settle()
        added = self.catalogue.refresh(now_ms())
        if added and self.serving is not None and self.serving.catalogue is self.catalogue:
            self.serving.add(added)
        if added and self._arrived is not None:
            self._arrived.extend(added)
        return self.catalogue

    def serving_index(self, model: CandidateModel, cat: Catalogue) -> ServingIndex:
        """The model's rows joined to the catalogue and ranker; rebuilt when any is new."""
        assert self.ranker is not None
        index = self.serving
        if (
            index is None
            or index.model is not model
            or index.catalogue is not cat
            or index.ranker is not self.ranker
        ):
            index = self.serving = ServingIndex.build(model, self.ranker, cat)
        return index

    def state(self, user: User) -> UserState:
        """The user's state, caught up with every watch event logged so far."""
        return self._entry(user).state

    def _entry(self, user: User) -> _UserEntry:
        assert self.ranker is not None
        entry = self.users.setdefault(user.id, _UserEntry(UserState()))
        with self.cell.store.connect() as conn:
            rows = conn.execute(
                _WATCHES_SINCE, {"user_id": user.id, "after": entry.last_event_id}
            ).all()
        cat = self.cat()
        model_rows = self.model.row if self.model is not None else {}
        for r in rows:
            ratio = r.watched_ms / r.duration_ms if r.duration_ms else 0.0
            self.ranker.observe(
                entry.state, r.video_id, ratio, {r.video_id: cat.groups(r.video_id)}
            )
            if (row := model_rows.get(r.video_id)) is not None:
                entry.watched_rows.append(row)
            entry.last_event_id = r.id
        return entry

    def viewer(self, user: User, cat: Catalogue) -> Viewer:
        with self.cell.store.connect() as conn:
            followees = list(conn.execute(_FOLLOWEES, {"user_id": user.id}).scalars())
        return Viewer(user.id, cat.restricted.get(user.domicile, set()), followees)

    def rank(self, user: User, n: int, explore_share: float, now: int) -> list[Candidate]:
        """The user's best n: ranked candidates, with exploration slots for fresh videos."""
        assert self.ranker is not None
        entry = self._entry(user)
        state = entry.state
        cat = self.cat()
        viewer = self.viewer(user, cat)
        explore_n = int(n * explore_share) + 1 if explore_share > 0 else 0
        fresh_ids = candidates.fresh(self.ranker, cat, state, viewer, now, explore_n)
        index = None
        if self.model is None:  # a format-1 version: no model rows, every candidate by id
            found = candidates.generate(None, cat, state, viewer)
            ids = list(found)
            pool = Pool(np.zeros(0, np.int64), np.zeros(0, np.int8), ids, [found[v] for v in ids])
        else:
            index = self.serving_index(self.model, cat)
            watched = np.asarray(entry.watched_rows, dtype=np.int64)
            pool = gather(index, state, viewer, watched, user.domicile)
        ranked = self._best(index, state, pool, set(fresh_ids), n)
        infos = cat.videos
        fresh_scores = self.ranker.score(
            state, fresh_ids, {v: infos[v].groups for v in fresh_ids}
        ).tolist()
        fresh = [
            Candidate(v, infos[v].creator_id, "explore", s, infos[v].category)
            for v, s in zip(fresh_ids, fresh_scores, strict=True)
        ]
        return interleave(ranked, fresh, explore_share, n)

    def _best(
        self, index: ServingIndex | None, state: UserState, pool: Pool, drop: set[str], n: int
    ) -> list[Candidate]:
        """The pool's n best by score, then video id (fresh videos are left to exploration)."""
        assert self.ranker is not None
        infos = self.cat().videos
        ids = [v for v in pool.ids if v not in drop]
        id_sources = [s for v, s in zip(pool.ids, pool.id_sources, strict=True) if v not in drop]
        rows, row_sources = pool.rows, pool.row_sources
        if index is not None and drop:
            keep = ~np.isin(rows, index.rows_of(drop))
            rows, row_sources = rows[keep], row_sources[keep]
        by_row = (
            row_scores(index, self.ranker, state, rows)
            if index is not None
            else np.zeros(0, np.float64)
        )
        by_id = self.ranker.score(state, ids, {v: infos[v].groups for v in ids})
        scores = np.concatenate([by_row, by_id])
        if scores.size > n > 0:
            # Only what can make the page is sorted in Python; ties at the cut are all kept.
            cut = np.partition(scores, scores.size - n)[scores.size - n]
            chosen = np.flatnonzero(scores >= cut).tolist()
        else:
            chosen = list(range(scores.size))
        video_ids = self.model.video_ids if self.model is not None else []
        n_rows = int(rows.size)
        picked = []
        for i in chosen:
            if i < n_rows:
                vid, source = video_ids[int(rows[i])], SOURCES[int(row_sources[i])]
            else:
                vid, source = ids[i - n_rows], id_sources[i - n_rows]
            picked.append((vid, float(scores[i]), source))
        picked.sort(key=lambda t: (-t[1], t[0]))
        return [
            Candidate(v, infos[v].creator_id, source, s, infos[v].category)
            for v, s, source in picked[:n]
        ]


def _settle() -> None:
    """After loading a model version or a catalogue: a big cell's are millions of objects, and
    every full collection of the cyclic garbage collector would walk them all again, on
    whichever request triggers it (1M synthetic videos: 2.0M tracked objects, 370 ms a full
    collection on an idle machine; 0 ms once frozen). Frozen, they are left out of collections;
    reference counting still frees a replaced version."""
    gc.collect()
    gc.freeze()


_PAUSED = 0
_PAUSED_LOCK = threading.Lock()


@contextmanager
def _collections_paused() -> Iterator[None]:
    """No automatic garbage collection while a version loads in the background, for any thread.

    A load allocates millions of objects (1M synthetic videos: 2.0M tracked), so the collector
    would run full collections over the growing version again and again, each one holding the
    interpreter's lock for up to hundreds of milliseconds while requests wait; and the
    gc.collect() of _settle would walk the whole version once more (370 ms at 1M). Instead the
    loaded version is frozen as it is. The price: cyclic garbage that any thread makes during
    the load is frozen with it and never freed (reference counting still frees the rest)."""
    global _PAUSED
    with _PAUSED_LOCK:
        _PAUSED += 1
        gc.disable()
    try:
        yield
    finally:
        with _PAUSED_LOCK:
            _PAUSED -= 1
            if _PAUSED == 0:
                gc.enable()


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
