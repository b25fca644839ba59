"""The For You feed of a cell: fallback, training with lineage, online updates, refusals."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest
from world import World, publish_copy

from carveout.accounts import consent
from carveout.core import NotFound
from carveout.recommend import FALLBACK_SOURCE, artefact, for_you, service, train_cell
from carveout.recommend.artefact import MANIFEST_FILE, RANKER_FILE, ArtefactRefused

SOURCES = {"following", "cowatch", "embedding", "trending", "popular", "explore"}


def test_no_model_falls_back_to_popular_and_says_so(trained_world: World) -> None:
    page = for_you(trained_world.cell, trained_world.user(), None, 5)
    assert page.items
    assert {i.source for i in page.items} == {FALLBACK_SOURCE}


def test_unknown_or_erased_user_is_not_found(trained_world: World) -> None:
    ghost = trained_world.user()
    trained_world.users.pop()
    from dataclasses import replace

    stranger = replace(ghost, id="0190f0f0-0000-7000-8000-000000000000")
    with pytest.raises(NotFound):
        for_you(trained_world.cell, stranger, None, 5)


def test_training_writes_lineage_and_the_feed_uses_the_model(trained_world: World) -> None:
    manifest = train_cell(trained_world.cell)
    assert manifest.cell == "na"
    assert set(manifest.jurisdictions) == {"US", "CA"}
    assert manifest.rows["watch_events"] == 25 * 6
    assert len(manifest.snapshot_digest) == 64
    folder = trained_world.cell.root / "models" / manifest.version
    assert (folder / RANKER_FILE).is_file() and (folder / MANIFEST_FILE).is_file()
    viewer = trained_world.users[2]
    page = for_you(trained_world.cell, viewer, None, 6)
    assert page.items and all(i.source in SOURCES for i in page.items)
    watched = {trained_world.videos[(0 + k) % 12] for k in range(6)}
    assert not watched & {i.video.id for i in page.items}
    creators = [i.video.creator_id for i in page.items]
    assert all(a != b for a, b in itertools.pairwise(creators))


def test_cold_start_user_gets_a_full_feed(trained_world: World) -> None:
    train_cell(trained_world.cell)
    page = for_you(trained_world.cell, trained_world.user(), None, 10)
    assert len(page.items) == 10
    assert len({i.video.category for i in page.items}) == 2


def test_an_event_changes_the_next_feed(trained_world: World) -> None:
    train_cell(trained_world.cell)
    viewer = trained_world.user()
    first = for_you(trained_world.cell, viewer, None, 10)
    top = first.items[0].video.id
    trained_world.watch(viewer, top, 1.0)
    second = for_you(trained_world.cell, viewer, None, 10)
    assert top not in {i.video.id for i in second.items}


def test_new_upload_is_explored(trained_world: World) -> None:
    train_cell(trained_world.cell)
    fresh = trained_world.video(trained_world.users[0], "news")

    service.recommender(trained_world.cell).catalogue = None  # skip the 0.5 s cache
    page = for_you(trained_world.cell, trained_world.user(), None, 20)
    sources = {i.video.id: i.source for i in page.items}
    assert sources.get(fresh) == "explore"


def test_foreign_lineage_is_refused_and_serving_continues(
    trained_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    good = train_cell(trained_world.cell)
    viewer = trained_world.user()
    assert for_you(trained_world.cell, viewer, None, 5).items[0].source != FALLBACK_SOURCE

    def foreign(folder: Path) -> None:
        raw = json.loads((folder / MANIFEST_FILE).read_text())
        raw["jurisdictions"] = ["CA", "GB"]
        (folder / MANIFEST_FILE).write_text(json.dumps(raw))

    bad = publish_copy(trained_world.cell, good.version, foreign)
    path = artefact.models_dir(trained_world.cell) / bad
    with pytest.raises(ArtefactRefused, match="GB"):
        artefact.load(path, trained_world.cell.spec)
    rec = service.recommender(trained_world.cell)
    with caplog.at_level(logging.ERROR):
        page = for_you(trained_world.cell, viewer, None, 5)
        assert rec.wait_for_loader(timeout=120)
    assert page.items[0].source != FALLBACK_SOURCE
    assert "outside cell 'na'" in caplog.text
    assert rec.manifest is not None and rec.manifest.version == good.version
    assert for_you(trained_world.cell, viewer, None, 5).items[0].source != FALLBACK_SOURCE


def test_corrupt_artefact_is_refused(trained_world: World) -> None:
    manifest = train_cell(trained_world.cell)
    path = trained_world.cell.root / "models" / manifest.version
    (path / RANKER_FILE).write_bytes(b'{"params": 1')
    with pytest.raises(ArtefactRefused, match="digest"):
        artefact.load(path, trained_world.cell.spec)
    (path / MANIFEST_FILE).write_text("not json")
    with pytest.raises(ArtefactRefused, match="unreadable"):
        artefact.load(path, trained_world.cell.spec)
    # Nothing servable: the feed falls back instead of failing.
    page = for_you(trained_world.cell, trained_world.user(), None, 5)
    assert {i.source for i in page.items} == {FALLBACK_SOURCE}


def test_a_model_for_another_cell_is_refused(trained_world: World) -> None:
    manifest = train_cell(trained_world.cell)
    path = trained_world.cell.root / "models" / manifest.version
    other = trained_world.deployment.cell("global")
    with pytest.raises(ArtefactRefused, match="trained for cell 'na'"):
        artefact.load(path, other.spec)


def test_star_cell_refuses_jurisdictions_named_by_another_cell(trained_world: World) -> None:
    spec = trained_world.deployment.cell("global").spec
    policy = trained_world.deployment.policy
    assert artefact.foreign_jurisdictions(("GB", "US"), spec, policy) == ["US"]
    assert artefact.foreign_jurisdictions(("GB",), spec, policy) == []


def test_withdrawn_training_consent_keeps_events_out_of_the_next_run(
    trained_world: World,
) -> None:
    before = train_cell(trained_world.cell).rows["watch_events"]
    leaver = trained_world.users[3]
    consent.record(trained_world.cell.store, leaver, "training", False, "2026-11")
    after = train_cell(trained_world.cell).rows["watch_events"]
    assert before - after == 6  # each world user watched six videos
    consent.record(trained_world.cell.store, leaver, "training", True, "2026-12")
    assert train_cell(trained_world.cell).rows["watch_events"] == before
