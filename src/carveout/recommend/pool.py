"""One request's candidates as rows of the model: filtered, de-duplicated and scored with numpy.

The sources that the model answers (co-watch, embedding neighbours, best priors) give row
numbers; turning each into a video id, checking it in Python and scoring it through the
ranker's dictionaries cost most of a request at catalogue scale (several hundred candidates,
a dozen dictionary look-ups each). Here the catalogue and the ranker are joined to the model's
rows once (`ServingIndex`: prior, servable, group keys per row) and a request works on arrays.
Followed creators and trending may name videos the model has never seen (new uploads): those
go through the per-id checks and the ranker's own scoring. The result is the same candidates,
labels and scores as checking and scoring each id in turn."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from carveout.recommend.candidates import (
    ANN_K,
    COWATCH_SEEDS,
    FOLLOWED_PER_CREATOR,
    MAX_FOLLOWED,
    POPULAR_N,
    TRENDING_N,
    CandidateModel,
    Viewer,
    centroid,
)
from carveout.recommend.catalogue import Catalogue
from carveout.recommend.ranker import Ranker, UserState

SOURCES = ("following", "cowatch", "embedding", "trending", "popular")
_CODE = {name: i for i, name in enumerate(SOURCES)}
_NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass
class ServingIndex:
    """The catalogue and the ranker joined to one model version's rows."""

    model: CandidateModel
    catalogue: Catalogue
    ranker: Ranker
    prior: np.ndarray  # float64: the ranker's prior of each row's video
    servable: np.ndarray  # bool: the row's video is in the catalogue
    group_of: np.ndarray  # int32: the row's group keys, as an index into `groups` (-1: none)
    popular: np.ndarray  # rows of the model's best priors, best first
    groups: list[Mapping[str, Sequence[str]]] = field(default_factory=list)
    _code: dict[int, int] = field(default_factory=dict)  # id(group keys) -> index in `groups`
    _blocked: dict[str, tuple[set[str], np.ndarray]] = field(default_factory=dict)

    @classmethod
    def build(cls, model: CandidateModel, ranker: Ranker, catalogue: Catalogue) -> ServingIndex:
        n = len(model.video_ids)
        k, mean = ranker.params.shrink, ranker.global_mean
        sums = np.fromiter((ranker.video_sum.get(v, 0.0) for v in model.video_ids), np.float64, n)
        counts = np.fromiter((ranker.video_n.get(v, 0) for v in model.video_ids), np.int64, n)
        # The same arithmetic as Ranker.prior, element by element: the same floats.
        prior = (sums + k * mean) / (counts + k)
        # Best priors that the model holds (a ranker's video outside it is never a candidate
        # here: both are trained from the same rows).
        popular = np.fromiter((model.row[v] for v in model.popular if v in model.row), np.int64, -1)
        index = cls(
            model,
            catalogue,
            ranker,
            prior,
            np.zeros(n, dtype=bool),
            np.full(n, -1, dtype=np.int32),
            popular,
        )
        index.add(model.video_ids)
        return index

    def add(self, video_ids: Iterable[str]) -> None:
        """Videos that entered the catalogue (and maybe the model): mark their rows servable."""
        infos, rows = self.catalogue.videos, self.model.row
        for video in video_ids:
            row, info = rows.get(video), infos.get(video)
            if row is None or info is None:
                continue
            self.servable[row] = True
            code = self._code.get(id(info.groups))
            if code is None:
                code = self._code[id(info.groups)] = len(self.groups)
                self.groups.append(info.groups)  # kept alive: its id stays its own
            self.group_of[row] = code

    def rows_of(self, video_ids: Iterable[str]) -> np.ndarray:
        rows = self.model.row
        return np.fromiter((r for v in video_ids if (r := rows.get(v)) is not None), np.int64)

    def blocked_rows(self, jurisdiction: str, blocked: set[str]) -> np.ndarray:
        """Rows restricted in the jurisdiction, worked out once per catalogue read."""
        cached = self._blocked.get(jurisdiction)
        if cached is None or cached[0] is not blocked:
            cached = self._blocked[jurisdiction] = (blocked, self.rows_of(blocked))
        return cached[1]


@dataclass
class Pool:
    """The candidates of one request: model rows with a source code each, and the few videos
    outside the model by id."""

    rows: np.ndarray
    row_sources: np.ndarray  # int8 index into SOURCES
    ids: list[str]
    id_sources: list[str]


def gather(
    index: ServingIndex,
    state: UserState,
    viewer: Viewer,
    watched_rows: np.ndarray,
    jurisdiction: str,
) -> Pool:
    """The candidates of candidates.py's sources, in its order (the first source that finds a
    video labels it), each capped after filtering."""
    model, catalogue = index.model, index.catalogue
    infos, watched, blocked, me = catalogue.videos, state.watched, viewer.blocked, viewer.user_id
    excluded = np.concatenate(
        [
            watched_rows,
            index.blocked_rows(jurisdiction, blocked),
            index.rows_of(catalogue.by_creator.get(me, ())),
        ]
    )
    parts: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    ids: list[str] = []
    id_sources: list[str] = []

    def by_id(videos: Iterable[str], source: str, cap: int) -> None:
        taken = {int(r) for p in parts for r in p.tolist()}
        found: list[int] = []
        added = 0
        for video in videos:
            if added >= cap:
                break
            if video in watched or video in blocked:
                continue
            info = infos.get(video)
            if info is None or info.creator_id == me:
                continue
            row = model.row.get(video)
            if row is None:
                if video in ids:
                    continue
                ids.append(video)
                id_sources.append(source)
            elif row in taken:
                continue
            else:
                taken.add(row)
                found.append(row)
            added += 1
        parts.append(np.asarray(found, dtype=np.int64))
        codes.append(np.full(len(found), _CODE[source], dtype=np.int8))

    def by_row(rows: np.ndarray, source: str, cap: int) -> None:
        rows = rows[(rows >= 0) & (rows < index.servable.size)]
        rows = rows[index.servable[rows]]
        rows = rows[~np.isin(rows, np.concatenate([excluded, *parts]))]
        _, first = np.unique(rows, return_index=True)
        rows = rows[np.sort(first)][:cap]  # de-duplicated, in the source's order
        parts.append(rows)
        codes.append(np.full(len(rows), _CODE[source], dtype=np.int8))

    followed = (
        vid
        for creator in viewer.followees[:MAX_FOLLOWED]
        for vid in reversed(catalogue.by_creator.get(creator, [])[-FOLLOWED_PER_CREATOR:])
    )
    by_id(followed, "following", MAX_FOLLOWED)
    seeds = [r for v, _r in reversed(state.recent) if (r := model.row.get(v)) is not None]
    # Round-robin over the seeds' neighbour lists: the best companion of each seed first.
    by_row(model.cowatch[seeds[:COWATCH_SEEDS]].T.ravel().astype(np.int64), "cowatch", ANN_K)
    vec = centroid(model, state)
    if vec is not None and model.index is not None:
        by_row(np.asarray(model.index.search(vec, ANN_K), dtype=np.int64), "embedding", ANN_K)
    by_id(catalogue.trending(TRENDING_N * 2), "trending", TRENDING_N)
    by_row(index.popular, "popular", POPULAR_N)
    rows = np.concatenate(parts) if parts else _NO_ROWS
    return Pool(rows, np.concatenate(codes) if codes else np.zeros(0, np.int8), ids, id_sources)


def row_scores(
    index: ServingIndex, ranker: Ranker, state: UserState, rows: np.ndarray
) -> np.ndarray:
    """Ranker.score of the rows' videos: the prior, plus each group-type term in the same
    order (adding 0.0 where a video lacks a type leaves its float unchanged)."""
    out: np.ndarray = index.prior[rows].copy()
    if not rows.size or not state.residual or not any(ranker.params.weights):
        return out
    distinct, inverse = np.unique(index.group_of[rows], return_inverse=True)
    terms = [
        ranker.affinity_terms(state, index.groups[c]) if c >= 0 else [] for c in distinct.tolist()
    ]
    for j in range(max(map(len, terms), default=0)):
        column = np.array([t[j] if j < len(t) else 0.0 for t in terms], dtype=np.float64)
        out += column[inverse]
    return out
