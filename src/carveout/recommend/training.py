"""Training a cell's model (ranker, item embeddings, co-watch, ANN index) from its own data only."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import sqlalchemy as sa

from carveout.accounts import consent
from carveout.cells import Cell
from carveout.core import InvalidInput, new_id, now_ms
from carveout.datamap import TABLES
from carveout.recommend import artefact, service
from carveout.recommend.ann import AnnIndex
from carveout.recommend.artefact import Manifest
from carveout.recommend.candidates import CandidateModel
from carveout.recommend.catalogue import video_groups
from carveout.recommend.embeddings import Interactions, cowatch, fit_embeddings
from carveout.recommend.ranker import Ranker, RankerParams
from carveout.recommend.ratings import Ratings
from carveout.recommend.tuning import tune

EVENTS = TABLES["events"]
VIDEOS = TABLES["videos"]
MIN_USERS_TO_TUNE = 20  # below this a validation split says nothing: default parameters
DEFAULT_PARAMS = RankerParams(cap=2.0, shrink=5.0, weights=(0.25, 0.0, 0.0, 0.25))


def _read(cell: Cell) -> tuple[list[Any], dict[str, dict[str, tuple[str, ...]]], list[str], str]:
    stmt = (
        sa.select(
            EVENTS.c.id,
            EVENTS.c.user_id,
            EVENTS.c.video_id,
            EVENTS.c.watched_ms,
            EVENTS.c.domicile,
            VIDEOS.c.duration_ms,
            # A guest copy is public content the policy let this cell hold (content exchange),
            # re-moderated here; the personal data the model learns from is this cell's own
            # users' events. Its lineage therefore names the viewer's domicile for it.
            sa.case(
                (VIDEOS.c.origin_cell.is_(None), VIDEOS.c.domicile), else_=EVENTS.c.domicile
            ).label("video_domicile"),
        )
        .select_from(EVENTS.join(VIDEOS, VIDEOS.c.id == EVENTS.c.video_id))
        .where(EVENTS.c.kind == "watch", VIDEOS.c.duration_ms > 0)
        # Users who withdrew consent to training are left out of every run from now on.
        .where(EVENTS.c.user_id.not_in(consent.withdrawn(consent.Purpose.TRAINING)))
        .order_by(EVENTS.c.id)
    )
    digest = hashlib.sha256()
    with cell.store.connect() as conn:
        rows: list[Any] = list(conn.execute(stmt).all())
        videos = conn.execute(
            sa.select(VIDEOS.c.id, VIDEOS.c.category, VIDEOS.c.hashtags, VIDEOS.c.domicile)
        ).all()
    for r in rows:
        digest.update(r.id.encode())
    groups = {v.id: video_groups(v.category, v.hashtags) for v in videos}
    jurisdictions = {r.domicile for r in rows} | {r.video_domicile for r in rows}
    return rows, groups, sorted(jurisdictions), digest.hexdigest()


class _Stages:
    """Seconds per training stage, into `out` when given (`carveout bench train` reports them)."""

    def __init__(self, out: dict[str, float] | None) -> None:
        self.out, self.at = out, time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        if self.out is not None:
            self.out[name] = self.out.get(name, 0.0) + now - self.at
        self.at = now


def train_cell(cell: Cell, seed: int = 0, stages: dict[str, float] | None = None) -> Manifest:
    """Fit the cell's ranker and candidate artefacts on its watch events; save a new version."""
    clock = _Stages(stages)
    rows, groups, jurisdictions, digest = _read(cell)
    clock.done("read")
    if not rows:
        raise InvalidInput(f"cell {cell.name!r} has no watch events to train on")
    users = [r.user_id for r in rows]
    videos = [r.video_id for r in rows]
    ratios = np.array([r.watched_ms / r.duration_ms for r in rows], dtype=np.float64)
    params, chosen = DEFAULT_PARAMS, "default"
    if len(set(users)) >= MIN_USERS_TO_TUNE:
        user_ix = {u: i for i, u in enumerate(sorted(set(users)))}
        video_ix = {v: i for i, v in enumerate(sorted(set(videos)))}
        ratings = Ratings(
            np.array([user_ix[u] for u in users], dtype=np.int64),
            np.array([video_ix[v] for v in videos], dtype=np.int64),
            ratios,
        )
        by_index = {str(i): groups.get(v, {}) for v, i in video_ix.items()}
        tuned, _info = tune(ratings, by_index, seed)
        params, chosen = tuned.params, "validation"
    clock.done("tune")
    ranker = Ranker.fit(videos, ratios, groups, params, users)
    clock.done("ranker")
    candidates = train_candidates(users, videos, ratios, seed, clock)
    manifest = Manifest(
        version=new_id(),
        cell=cell.name,
        jurisdictions=tuple(jurisdictions),
        snapshot_digest=digest,
        rows={
            "watch_events": len(rows),
            "users": len(set(users)),
            "videos": len(set(videos)),
            "embedding_dims": int(candidates.vectors.shape[1]),
        },
        trained_at_ms=now_ms(),
        code_version=artefact.code_version(),
        params={**params.as_dict(), "chosen_by": chosen},
        artefact_sha256="",
    )
    path = artefact.save(cell, ranker, manifest, candidates)
    clock.done("save")
    service.model_saved(cell)  # a recommender serving the cell swaps it in without a request
    return artefact.read_manifest(path)  # with the digests that saving added


def train_candidates(
    users: list[str],
    videos: list[str],
    ratios: np.ndarray,
    seed: int = 0,
    clock: _Stages | None = None,
) -> CandidateModel:
    """Embeddings (truncated SVD), co-watch neighbours and the ANN index over the embeddings."""
    clock = clock or _Stages(None)
    data = Interactions.build(users, videos, ratios)
    vectors = fit_embeddings(data, seed=seed)
    clock.done("embeddings")
    neighbours = cowatch(data)
    clock.done("cowatch")
    index = AnnIndex.build(vectors) if vectors.shape[1] else None
    clock.done("ann")
    return CandidateModel(data.video_ids, vectors, neighbours, index)
