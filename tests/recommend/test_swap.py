"""A new model version is loaded off the request path and swapped in when ready; requests keep
being answered from the old one meanwhile; a version that fails its checks is never swapped in.

The load is real (a trained version read from disk and checked); the test holds it at the one
point between "loaded and indexed" and "swapped" through the recommender's `before_swap` hook."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from world import World, publish_copy

from carveout.core.pagination import Page
from carveout.recommend import FALLBACK_SOURCE, FeedItem, artefact, for_you, service, train_cell
from carveout.recommend.artefact import MANIFEST_FILE, VECTORS_FILE, Manifest
from carveout.recommend.service import describe_user

WAIT_S = 120.0  # only a guard against hanging forever; nothing is timed


def feed_in_thread(world: World, viewer_ix: int) -> Page[FeedItem]:
    """One feed request in its own thread; fails (instead of hanging) if it cannot finish,
    as it could not if requests waited for the load."""
    out: list[Page[FeedItem]] = []
    worker = threading.Thread(
        target=lambda: out.append(for_you(world.cell, world.users[viewer_ix], None, 6))
    )
    worker.start()
    worker.join(WAIT_S)
    assert not worker.is_alive(), "a feed request waited for the model load"
    return out[0]


def test_requests_are_served_from_the_old_version_until_the_new_one_is_ready(
    trained_world: World,
) -> None:
    world = trained_world
    old = train_cell(world.cell)
    viewer = 3
    before = for_you(world.cell, world.users[viewer], None, 6)
    assert before.items[0].source != FALLBACK_SOURCE
    rec = service.recommender(world.cell)
    reached, release = threading.Event(), threading.Event()
    held: list[Manifest] = []

    def hold(manifest: Manifest) -> None:
        held.append(manifest)
        reached.set()
        release.wait(WAIT_S)

    rec.before_swap = hold
    # More watches, so the new version's priors differ; the retrain starts the load itself.
    for u in range(5, 15):
        world.watch(world.users[u], world.videos[0], 1.9)
    new = train_cell(world.cell)
    assert reached.wait(WAIT_S), "the retrain did not start a load"
    assert [m.version for m in held] == [new.version]
    # Loaded and indexed, not yet swapped: requests are answered, from the old version.
    during = feed_in_thread(world, viewer)
    assert [i.video.id for i in during.items] == [i.video.id for i in before.items]
    assert [i.score for i in during.items] == [i.score for i in before.items]
    assert describe_user(world.cell, world.users[viewer])["model"] == old.version
    release.set()
    assert rec.wait_for_loader(WAIT_S)
    # Swapped without another request, with its serving index already built.
    assert rec.manifest is not None and rec.manifest.version == new.version
    assert rec.serving is not None and rec.serving.model is rec.model
    after = for_you(world.cell, world.users[viewer], None, 6)
    assert after.items[0].source != FALLBACK_SOURCE
    assert describe_user(world.cell, world.users[viewer])["model"] == new.version
    assert [i.score for i in after.items] != [i.score for i in before.items]


def test_a_retrain_swaps_in_without_a_request(trained_world: World) -> None:
    first = train_cell(trained_world.cell)
    for_you(trained_world.cell, trained_world.users[2], None, 5)
    rec = service.recommender(trained_world.cell)
    assert rec.manifest is not None and rec.manifest.version == first.version
    second = train_cell(trained_world.cell)
    assert rec.wait_for_loader(WAIT_S)
    assert rec.manifest.version == second.version


def test_a_corrupt_artefact_is_not_swapped_in(
    trained_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Embeddings of the wrong shape whose digest matches the manifest: the checks pass, the
    load fails while reading; the old version keeps serving and the failure is logged."""
    good = train_cell(trained_world.cell)
    viewer = trained_world.users[1]
    before = for_you(trained_world.cell, viewer, None, 5)

    def corrupt(folder: Path) -> None:
        np.save(folder / VECTORS_FILE, np.zeros((3, 2), dtype=np.float32))
        raw = json.loads((folder / MANIFEST_FILE).read_text())
        raw["files"][VECTORS_FILE] = artefact._sha(folder / VECTORS_FILE)
        (folder / MANIFEST_FILE).write_text(json.dumps(raw))

    bad = publish_copy(trained_world.cell, good.version, corrupt)
    rec = service.recommender(trained_world.cell)
    service.model_saved(trained_world.cell)
    assert rec.wait_for_loader(WAIT_S)
    assert rec.manifest is not None and rec.manifest.version == good.version
    assert "corrupt artefact" in rec.refused[bad]
    assert f"model {bad}: corrupt artefact" in caplog.text
    after = for_you(trained_world.cell, viewer, None, 5)
    assert [i.video.id for i in after.items] == [i.video.id for i in before.items]
    assert rec.wait_for_loader(WAIT_S)  # a refused version is not loaded again
    assert rec.manifest.version == good.version


def test_a_refused_lineage_is_not_swapped_in_and_a_good_newer_one_is(
    trained_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    good = train_cell(trained_world.cell)
    for_you(trained_world.cell, trained_world.users[0], None, 5)
    rec = service.recommender(trained_world.cell)

    def foreign(folder: Path) -> None:
        raw = json.loads((folder / MANIFEST_FILE).read_text())
        raw["jurisdictions"] = ["US", "GB"]
        (folder / MANIFEST_FILE).write_text(json.dumps(raw))

    bad = publish_copy(trained_world.cell, good.version, foreign)
    service.model_saved(trained_world.cell)
    assert rec.wait_for_loader(WAIT_S)
    assert rec.manifest is not None and rec.manifest.version == good.version
    assert "lineage includes GB, outside cell 'na'" in rec.refused[bad]
    assert "lineage includes GB" in caplog.text
    newer = train_cell(trained_world.cell)  # past the refused one
    assert rec.wait_for_loader(WAIT_S)
    assert rec.manifest.version == newer.version
