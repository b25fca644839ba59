"""Candidate generation: a few hundred videos per request from several sources, each labelled.

Sources, in the order that labels a video found by more than one: videos of followed creators,
co-watch neighbours of the user's recent watches, the nearest item embeddings to the user's
recent-watch centroid (through the ANN index), trending in the cell, and the model's best priors
(what a user with no history sees besides trending). Fresh videos the model has never seen fill
the exploration slots separately, so that a new upload gets its first impressions."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from carveout.recommend.ann import NearestSearch
from carveout.recommend.catalogue import Catalogue
from carveout.recommend.ranker import Ranker, UserState

FOLLOWED_PER_CREATOR = 5
MAX_FOLLOWED = 200
COWATCH_SEEDS = 10
ANN_K = 200
TRENDING_N = 100
POPULAR_N = 200
FRESH_MS = 24 * 3600 * 1000  # videos younger than this, unknown to the model, get explored
FRESH_POOL = 20  # exploration picks among this many of the newest fresh videos
FRESH_WALK = 5000  # newest uploads examined for fresh videos


@dataclass
class CandidateModel:
    """The candidate artefacts of one model version, and what serving derives from them."""

    video_ids: list[str]
    vectors: np.ndarray  # unit-norm float32, one row per video id
    cowatch: np.ndarray  # int32 row indices, -1 padded
    index: NearestSearch | None
    popular: list[str] = field(default_factory=list)  # best priors first
    row: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.row:
            self.row = {v: i for i, v in enumerate(self.video_ids)}

    def with_popular(self, ranker: Ranker, n: int = POPULAR_N * 5) -> CandidateModel:
        ids = list(ranker.video_n)
        priors = np.fromiter((ranker.prior(v) for v in ids), np.float64, len(ids))
        top = np.argsort(-priors, kind="stable")[:n]
        self.popular = [ids[i] for i in top.tolist()]
        return self


@dataclass(frozen=True)
class Viewer:
    """Who asks: what to exclude and whom they follow."""

    user_id: str
    blocked: set[str]
    followees: list[str]


def _usable(video: str, viewer: Viewer, state: UserState, catalogue: Catalogue) -> bool:
    info = catalogue.videos.get(video)
    return (
        info is not None
        and video not in state.watched
        and video not in viewer.blocked
        and info.creator_id != viewer.user_id
    )


def centroid(model: CandidateModel, state: UserState) -> np.ndarray | None:
    """The user's taste: recent watches' embeddings weighted by capped watch ratio."""
    rows, weights = [], []
    for video, ratio in state.recent:
        i = model.row.get(video)
        if i is not None:
            rows.append(i)
            weights.append(min(max(ratio, 0.05), 2.0))
    if not rows or model.vectors.shape[1] == 0:
        return None
    # A weighted mean (np.average's many checks cost more than the sum, once per request).
    w = np.asarray(weights, dtype=np.float32)
    vec = (w @ model.vectors[rows]) / w.sum()
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else None


def generate(
    model: CandidateModel | None,
    catalogue: Catalogue,
    state: UserState,
    viewer: Viewer,
) -> dict[str, str]:
    """Candidate video id -> the source that found it (first source wins)."""
    out: dict[str, str] = {}
    # _usable's checks inlined, on locals: this loop sees several hundred ids per request.
    infos, watched, blocked, me = catalogue.videos, state.watched, viewer.blocked, viewer.user_id

    def add(videos: Iterable[str], source: str, cap: int) -> None:
        added = 0
        for video in videos:
            if added >= cap:
                break
            if video in out or video in watched or video in blocked:
                continue
            info = infos.get(video)
            if info is not None and info.creator_id != me:
                out[video] = source
                added += 1

    followed = (
        vid
        for creator in viewer.followees[:MAX_FOLLOWED]
        for vid in reversed(catalogue.by_creator.get(creator, [])[-FOLLOWED_PER_CREATOR:])
    )
    add(followed, "following", MAX_FOLLOWED)
    if model is not None:
        seeds = [model.row[v] for v, _r in reversed(state.recent) if v in model.row]
        # Round-robin over the seeds' neighbour lists: the best companion of each seed first.
        neighbours: list[int] = model.cowatch[seeds[:COWATCH_SEEDS]].T.ravel().tolist()
        add((model.video_ids[i] for i in neighbours if i >= 0), "cowatch", ANN_K)
        vec = centroid(model, state)
        if vec is not None and model.index is not None:
            hits = model.index.search(vec, ANN_K)
            add((model.video_ids[i] for i in hits.tolist()), "embedding", ANN_K)
    add(catalogue.trending(TRENDING_N * 2), "trending", TRENDING_N)
    if model is not None:
        add(model.popular, "popular", POPULAR_N)
    return out


def fresh(
    ranker: Ranker,
    catalogue: Catalogue,
    state: UserState,
    viewer: Viewer,
    now_ms: int,
    n: int,
) -> list[str]:
    """Up to n exploration picks among the newest videos the model has never seen."""
    pool: list[str] = []
    for walked, video in enumerate(reversed(catalogue.arrivals)):
        if walked >= FRESH_WALK or len(pool) >= FRESH_POOL:
            break
        info = catalogue.videos.get(video)
        if info is None or now_ms - info.created_at > FRESH_MS or ranker.video_n.get(video, 0) > 0:
            continue
        if _usable(video, viewer, state, catalogue):
            pool.append(video)
    if len(pool) <= n:
        return pool
    # Spread first impressions over the newest uploads instead of showing everyone the same one.
    rng = random.Random(f"{viewer.user_id}:{state.events}:{now_ms // 1000}")  # noqa: S311
    return rng.sample(pool, n)
