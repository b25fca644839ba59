"""Candidate generation: embeddings, co-watch, ANN, followed creators, and their artefacts."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from world import World, publish_copy

from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.recommend import FALLBACK_SOURCE, artefact, for_you, service, train_cell
from carveout.recommend.ann import AnnIndex, ExactIndex
from carveout.recommend.artefact import INDEX_FILE, MANIFEST_FILE, ArtefactRefused
from carveout.recommend.embeddings import Interactions, cowatch, fit_embeddings


def test_embeddings_put_co_watched_videos_together() -> None:
    # Synthetic: users 0-19 watch videos a0-a4, users 20-39 watch b0-b4.
    users, videos = [], []
    for u in range(40):
        group = "a" if u < 20 else "b"
        for v in range(5):
            users.append(f"u{u}")
            videos.append(f"{group}{v}")
    data = Interactions.build(users, videos, np.ones(len(users)))
    vectors = fit_embeddings(data, dim=4)
    col = {v: i for i, v in enumerate(data.video_ids)}
    same = float(vectors[col["a0"]] @ vectors[col["a1"]])
    cross = float(vectors[col["a0"]] @ vectors[col["b0"]])
    assert same > cross
    neighbours = {data.video_ids[i] for i in cowatch(data, k=4)[col["a0"]]}
    assert neighbours == {"a1", "a2", "a3", "a4"}


def test_ann_index_agrees_with_exact_search() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ann, exact = AnnIndex.build(vectors), ExactIndex(vectors)
    recall = [
        len(set(ann.search(q, 50).tolist()) & set(exact.search(q, 50).tolist())) / 50
        for q in vectors[:50]
    ]
    assert float(np.mean(recall)) >= 0.9
    assert exact.search(vectors[7], 1).tolist() == [7]


def test_training_saves_candidate_artefacts_under_the_manifest(trained_world: World) -> None:
    manifest = train_cell(trained_world.cell)
    folder = trained_world.cell.root / "models" / manifest.version
    assert set(manifest.files) == {"video_ids.json", "embeddings.npy", "cowatch.npy", INDEX_FILE}
    raw = json.loads((folder / MANIFEST_FILE).read_text())
    assert raw["jurisdictions"] == ["CA", "US"] and set(raw["files"]) == set(manifest.files)
    version = artefact.load_version(folder, trained_world.cell.spec)
    assert version.candidates is not None and len(version.candidates.video_ids) == 12


def test_a_user_with_history_gets_learned_candidates(trained_world: World) -> None:
    train_cell(trained_world.cell)
    viewer = trained_world.users[3]
    page = for_you(trained_world.cell, viewer, None, 6)
    assert {i.source for i in page.items} & {"cowatch", "embedding"}


def test_followed_creators_videos_are_candidates(trained_world: World) -> None:
    train_cell(trained_world.cell)
    viewer, creator = trained_world.user(), trained_world.user("US")
    own = trained_world.video(creator, "music")
    with trained_world.cell.store.begin() as conn:
        conn.execute(
            sa.insert(TABLES["follows"]),
            [
                {
                    "id": new_id(),
                    "domicile": viewer.domicile,
                    "follower_id": viewer.id,
                    "followee_id": creator.id,
                    "created_at": now_ms(),
                }
            ],
        )
    service.recommender(trained_world.cell).catalogue = None
    page = for_you(trained_world.cell, viewer, None, 20)
    assert {i.video.id: i.source for i in page.items}.get(own) in {"following", "explore"}


def test_cold_start_feed_is_diverse(trained_world: World) -> None:
    train_cell(trained_world.cell)
    page = for_you(trained_world.cell, trained_world.user(), None, 10)
    assert {i.source for i in page.items} <= {"trending", "popular", "explore"}
    assert len({i.video.category for i in page.items}) == 2
    creators = [i.video.creator_id for i in page.items]
    assert all(a != b for a, b in itertools.pairwise(creators))


def test_corrupt_index_is_refused_and_the_previous_version_serves(
    trained_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    good = train_cell(trained_world.cell)
    viewer = trained_world.users[4]
    assert for_you(trained_world.cell, viewer, None, 5).items[0].source != FALLBACK_SOURCE

    def damage(folder: Path) -> None:
        index = folder / INDEX_FILE
        index.write_bytes(index.read_bytes()[:-7] + b"garbage")

    bad = publish_copy(trained_world.cell, good.version, damage)
    with pytest.raises(ArtefactRefused, match=r"ann\.index digest"):
        artefact.load_version(
            artefact.models_dir(trained_world.cell) / bad, trained_world.cell.spec
        )
    rec = service.recommender(trained_world.cell)
    with caplog.at_level(logging.ERROR):
        page = for_you(trained_world.cell, viewer, None, 5)  # finds it, loads it aside
        assert rec.wait_for_loader(timeout=120)
    assert page.items and page.items[0].source != FALLBACK_SOURCE
    assert "ann.index digest does not match" in caplog.text
    assert rec.manifest is not None and rec.manifest.version == good.version
    assert bad in rec.refused


def test_a_rejected_video_never_shows(trained_world: World) -> None:
    train_cell(trained_world.cell)
    viewer = trained_world.user()
    first = for_you(trained_world.cell, viewer, None, 10)
    top = first.items[0].video.id
    with trained_world.cell.store.begin() as conn:
        conn.execute(
            sa.update(TABLES["videos"])
            .where(TABLES["videos"].c.id == top)
            .values(status="rejected")
        )
    again = for_you(trained_world.cell, viewer, None, 10)
    assert top not in {i.video.id for i in again.items}
