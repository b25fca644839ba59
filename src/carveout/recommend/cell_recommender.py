"""One cell's recommender: the served version (versions.py) and, per request, a user's best
candidates — their state caught up with the event log, candidates gathered, scored, re-ranked,
with exploration slots for fresh uploads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from carveout.accounts import User
from carveout.core import now_ms
from carveout.core.heap import settle
from carveout.datamap import TABLES
from carveout.recommend import candidates
from carveout.recommend.candidates import CandidateModel, Viewer
from carveout.recommend.catalogue import Catalogue
from carveout.recommend.pool import SOURCES, Pool, ServingIndex, gather, row_scores
from carveout.recommend.ranker import UserState
from carveout.recommend.rerank import Candidate, interleave
from carveout.recommend.versions import ServedVersions, UserEntry

EVENTS = TABLES["events"]
VIDEOS = TABLES["videos"]
FOLLOWS = TABLES["follows"]
MAX_FOLLOWEES = 500

# The request path's statements, built once: building a select per request cost more CPU than
# SQLite spent answering it (SQLAlchemy reuses the compiled form either way).
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


@dataclass
class CellRecommender(ServedVersions):
    def cat(self) -> Catalogue:
        if self.catalogue is None:
            self.catalogue = Catalogue(self.cell)
            self.catalogue.refresh(now_ms())
            settle()
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

    def _entry(self, user: User) -> UserEntry:
        assert self.ranker is not None
        entry = self.users.setdefault(user.id, UserEntry(UserState()))
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
