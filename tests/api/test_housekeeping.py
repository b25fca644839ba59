"""What `carveout serve` does beside requests: retention and retraining on schedule, and
finishing interrupted erasures when it starts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from apiclient import Api, auth
from fastapi.testclient import TestClient

from carveout import privacy
from carveout.api import create_app
from carveout.api.housekeeping import start_up, tick
from carveout.core import now_ms
from carveout.datamap import TABLES
from carveout.recommend import artefact, train_cell
from carveout.recommend.schedule import HOUR_MS, period_ms

DAY = 24 * HOUR_MS


def _watch(api: Api, viewer: dict[str, str], video_id: str) -> None:
    events = [{"video_id": video_id, "kind": "watch", "watched_ms": 3000}]
    r = api.client.post("/v1/events", headers=auth(viewer), json={"events": events})
    assert r.status_code == 202, r.text


def test_retrain_runs_when_due_and_only_then(api: Api) -> None:
    creator = api.signup("GB")
    video = api.upload(creator, seed=4)["id"]
    viewer = api.signup("CA")
    cell = api.deployment.cell("global")
    now = now_ms()
    assert tick(api.deployment, now, DAY) == []  # nothing watched yet: nothing to learn
    _watch(api, viewer, video)
    assert tick(api.deployment, now, DAY) == ["global"]  # no model yet, and data: train
    assert len(artefact.versions(cell)) == 1
    _watch(api, viewer, video)
    assert tick(api.deployment, now + HOUR_MS, DAY) == []  # fresh model: not due
    assert tick(api.deployment, now + 2 * DAY, DAY) == ["global"]  # stale, new events
    assert tick(api.deployment, now + 4 * DAY, DAY) == []  # stale, but nothing new since


def test_retention_runs_on_each_tick(api: Api) -> None:
    viewer = api.signup("CA")
    sessions = TABLES["sessions"]
    cell = api.deployment.cell("global")
    later = now_ms() + 60 * DAY  # the session (30 days) expired more than 30 days before
    tick(api.deployment, later, DAY)
    with cell.store.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(sessions.c.user_id == viewer["X-User"])
        ).scalar_one()
    assert left == 0


def test_start_up_finishes_an_interrupted_erasure(api: Api) -> None:
    user = api.signup("CA")
    cell = api.deployment.cell("global")
    rid = privacy.start_erasure(cell, user["X-User"], requested_by=user["X-User"])
    start_up(api.deployment)
    with cell.store.connect() as conn:
        status = conn.execute(
            sa.select(TABLES["privacy_requests"].c.status).where(
                TABLES["privacy_requests"].c.id == rid
            )
        ).scalar_one()
    assert status == "done"


def test_a_bad_retrain_period_stops_start_up(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARVEOUT_RETRAIN_HOURS", "-1")
    with pytest.raises(ValueError, match="CARVEOUT_RETRAIN_HOURS"):
        period_ms()
    app = create_app(api.deployment, housekeeping=True)
    with pytest.raises(ValueError, match="must be positive"), TestClient(app):
        pass


def test_start_up_loads_every_cells_model_before_the_first_request(api: Api) -> None:
    from carveout.recommend.service import forget, recommender

    creator = api.signup("GB")
    video = api.upload(creator, seed=4)["id"]
    _watch(api, api.signup("CA"), video)
    cell = api.deployment.cell("global")
    train_cell(cell)
    forget(cell)  # as a freshly started process: nothing loaded
    assert recommender(cell).ranker is None
    with TestClient(create_app(api.deployment, housekeeping=True)):
        rec = recommender(cell)
        assert rec.ranker is not None and rec.catalogue is not None  # no request made yet
