"""After a carve, the content exchange gives the carved cell's users the source's videos back,
as guest copies the leak scan accepts and the recommender's lineage keeps inside J, and the
source's users the carved cell's (tests/carve/test_carve_exchange_back.py in detail)."""

from __future__ import annotations

import sqlalchemy as sa
from carving import MOVING
from fastapi.testclient import TestClient

from carveout import carve, exchange
from carveout.api import create_app
from carveout.carve.purge import purge
from carveout.carve.verify import leak_scan
from carveout.cells import Deployment
from carveout.datamap import TABLES
from carveout.recommend import train_cell

EVENTS, VIDEOS = TABLES["events"], TABLES["videos"]


def test_a_carve_then_an_exchange_sync_shows_the_source_videos_again(loaded: Deployment) -> None:
    outcome = carve.run(loaded, carve.start(loaded, MOVING, "na-anz"))
    assert outcome.leaks is not None and outcome.leaks.leaks == 0
    target, source = loaded.cell("na-anz"), loaded.cell("global")
    wanted = exchange.referenced(target)
    assert wanted  # the carved users had watched videos that stayed in the source

    client = TestClient(create_app(loaded))
    body = {
        "handle": "maple",
        "display_name": "M",
        "email": "m@example.com",
        "password": "long enough pw",
        "country": "CA",
    }
    r = client.post("/v1/users", json=body)
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    first = min(wanted)
    assert client.get(f"/v1/videos/{first}", headers=auth).status_code == 404
    watch = {"events": [{"video_id": first, "kind": "watch", "watched_ms": 1000}]}
    assert client.post("/v1/events", headers=auth, json=watch).status_code == 404

    report = exchange.sync(loaded.policy, source, target, only_referenced=True, limit=5)
    assert report.ok and sum(report.copied.values()) == 5, report
    held = {g.video_id for g in exchange.guests(target)}
    assert first in held and held <= wanted

    seen = client.get(f"/v1/videos/{first}", headers=auth)
    assert seen.status_code == 200 and seen.json()["guest_of"] == "global"
    assert client.post("/v1/events", headers=auth, json=watch).status_code == 202
    # The carved users' own events on those videos resolve again, and stay theirs (J).
    with target.store.connect() as conn:
        joined = conn.execute(
            sa.select(
                sa.func.count(), sa.func.min(EVENTS.c.domicile), sa.func.max(EVENTS.c.domicile)
            )
            .select_from(EVENTS.join(VIDEOS, VIDEOS.c.id == EVENTS.c.video_id))
            .where(VIDEOS.c.origin_cell == "global")
        ).one()
    assert joined[0] > 1 and {joined[1], joined[2]} <= set(MOVING)

    # The leak scan accepts the allowed guest copies and still sees nothing else foreign.
    scan = leak_scan(target, MOVING, loaded.policy)
    assert scan.leaks == 0 and scan.guest_rows["videos"] == 5
    assert leak_scan(target, MOVING).leaks > 0  # without the policy nothing is allowed

    # The other way too: the source is sealed against J since the carve, but the seal lets
    # guest copies through, so its staying users get the carved cell's videos.
    back = exchange.sync(loaded.policy, target, source, limit=2)
    assert back.ok and sum(back.copied.values()) == 2, back.failures
    copies = exchange.guests(source)
    assert len(copies) == 2 and {g.origin_cell for g in copies} == {"na-anz"}
    assert {g.origin_domicile for g in copies} <= set(MOVING)
    assert outcome.purge is not None and outcome.purge.remaining_rows == 0
    assert sum(purge(source, MOVING, "na-anz").remaining.values()) == 0

    # Retrained with guest copies watched: the lineage stays inside J.
    manifest = train_cell(target)
    assert set(manifest.jurisdictions) <= set(MOVING)
    client.close()
