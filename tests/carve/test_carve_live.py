"""A carve while the API keeps taking writes: none fails, none is lost, none lands twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from carving import MOVING
from fastapi.testclient import TestClient

from carveout import carve
from carveout.api import create_app
from carveout.cells import Cell, Deployment
from carveout.core import now_ms
from carveout.datamap import TABLES
from carveout.events import recompute_all


def _signup(client: TestClient, handle: str, country: str) -> dict[str, str]:
    body = {
        "handle": handle,
        "display_name": handle,
        "email": f"{handle}@example.com",
        "password": "long enough pw",
        "country": country,
    }
    r = client.post("/v1/users", json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}", "id": r.json()["user"]["id"]}


def test_writes_during_a_live_carve_are_held_not_failed_and_land_once(
    loaded: Deployment,
) -> None:
    client = TestClient(create_app(loaded))
    users = {c: _signup(client, f"writer_{c.lower()}", c) for c in ("CA", "US", "GB", "DE")}
    # Each writer watches videos of its own side of the new border: after the cutover a cell
    # knows only its own videos (cross-border viewing is the content exchange's job).
    vids = TABLES["videos"]
    with loaded.cell("global").store.connect() as conn:
        moving = [
            r[0]
            for r in conn.execute(sa.select(vids.c.id).where(vids.c.domicile.in_(MOVING)).limit(50))
        ]
        staying = [
            r[0]
            for r in conn.execute(
                sa.select(vids.c.id).where(~vids.c.domicile.in_(MOVING)).limit(50)
            )
        ]
    acked: Counter[str] = Counter()  # user id -> events acknowledged
    failures: list[str] = []
    latencies: dict[str, list[float]] = {c: [] for c in users}
    stop = threading.Event()

    def writer(country: str) -> None:
        who = users[country]
        videos = moving if country in MOVING else staying
        headers = {"Authorization": who["Authorization"]}
        i = 0
        while not stop.is_set():
            batch = [
                {"video_id": videos[(i + k) % len(videos)], "kind": "watch", "watched_ms": 1000 + k}
                for k in range(5)
            ]
            began = time.monotonic()
            r = client.post("/v1/events", headers=headers, json={"events": batch})
            latencies[country].append(time.monotonic() - began)
            if r.status_code == 202:
                acked[who["id"]] += r.json()["accepted"]
            else:
                failures.append(f"{country}: {r.status_code} {r.text}")
            i += 1

    threads = [threading.Thread(target=writer, args=(c,)) for c in users]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        spec = carve.start(loaded, MOVING, "na-anz")
        outcome = carve.run(loaded, spec)
        time.sleep(0.3)  # writes keep flowing after the cutover, now to the new cell
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert failures == []
    assert outcome.verify is not None and outcome.verify.ok
    assert outcome.leaks is not None and outcome.leaks.leaks == 0
    for country, who in users.items():
        assert acked[who["id"]] > 0, country
        home = loaded.cell_for(country)
        events = TABLES["events"]
        with home.store.connect() as conn:
            stored: Any = conn.execute(
                sa.select(sa.func.count()).where(events.c.user_id == who["id"])
            ).scalar_one()
        assert stored == acked[who["id"]], f"{country}: {stored} stored, {acked[who['id']]} acked"
        other = loaded.cell("global" if home.name == "na-anz" else "na-anz")
        with other.store.connect() as conn:
            assert (
                conn.execute(
                    sa.select(sa.func.count()).where(events.c.user_id == who["id"])
                ).scalar_one()
                == 0
            )
    assert loaded.cell_for("CA").name == "na-anz"
    # The target's counters, rebuilt at the cutover only for the videos its last changes
    # touched and kept by writers since, are what a full rebuild from its own events gives.
    target = loaded.cell("na-anz")
    kept = _counters(target)
    recompute_all(target.store, now_ms())
    rebuilt = _counters(target)
    assert kept.keys() == rebuilt.keys() and len(kept) > 0
    for video, counts in rebuilt.items():
        assert kept[video] == pytest.approx(counts), video


def _counters(cell: Cell) -> dict[str, tuple[float, ...]]:
    stats = TABLES["video_stats"]
    cols = [c for c in stats.c if c.name not in ("video_id", "domicile", "updated_at")]
    with cell.store.connect() as conn:
        rows = conn.execute(sa.select(stats.c.video_id, *cols)).all()
    return {r[0]: tuple(float(x) for x in r[1:]) for r in rows}
