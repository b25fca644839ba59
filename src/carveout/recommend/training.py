"""Training a cell's ranker from the cell's own event log and videos, with a lineage manifest."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import sqlalchemy as sa

from carveout.cells import Cell
from carveout.core import InvalidInput, new_id, now_ms
from carveout.datamap import TABLES
from carveout.recommend import artefact
from carveout.recommend.artefact import Manifest
from carveout.recommend.ranker import Ranker, RankerParams
from carveout.recommend.ratings import Ratings
from carveout.recommend.tuning import tune

EVENTS = TABLES["events"]
VIDEOS = TABLES["videos"]
MIN_USERS_TO_TUNE = 20  # below this a validation split says nothing: default parameters
DEFAULT_PARAMS = RankerParams(cap=2.0, shrink=5.0, weights=(0.25, 0.0, 0.0, 0.25))


def video_groups(category: str | None, hashtags: str | None) -> dict[str, tuple[str, ...]]:
    """A cell's video as group keys: its category (level 1) and hashtags (tags)."""
    tags = json.loads(hashtags or "[]")
    out: dict[str, tuple[str, ...]] = {"tag": tuple(f"tag:{t}" for t in tags)}
    if category:
        out["c1"] = (f"c1:{category}",)
    return out


def _read(cell: Cell) -> tuple[list[Any], dict[str, dict[str, tuple[str, ...]]], list[str], str]:
    stmt = (
        sa.select(
            EVENTS.c.id,
            EVENTS.c.user_id,
            EVENTS.c.video_id,
            EVENTS.c.watched_ms,
            EVENTS.c.domicile,
            VIDEOS.c.duration_ms,
            VIDEOS.c.domicile.label("video_domicile"),
        )
        .select_from(EVENTS.join(VIDEOS, VIDEOS.c.id == EVENTS.c.video_id))
        .where(EVENTS.c.kind == "watch", VIDEOS.c.duration_ms > 0)
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


def train_cell(cell: Cell, seed: int = 0) -> Manifest:
    """Fit the cell's ranker on its watch events and save it as a new version."""
    rows, groups, jurisdictions, digest = _read(cell)
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
    ranker = Ranker.fit(videos, ratios, groups, params)
    manifest = Manifest(
        version=new_id(),
        cell=cell.name,
        jurisdictions=tuple(jurisdictions),
        snapshot_digest=digest,
        rows={"watch_events": len(rows), "users": len(set(users)), "videos": len(set(videos))},
        trained_at_ms=now_ms(),
        code_version=artefact.code_version(),
        params={**params.as_dict(), "chosen_by": chosen},
        artefact_sha256="",
    )
    artefact.save(cell, ranker, manifest)
    return manifest
