"""A whole carve on the real KuaiRec load: everything of J moves, nothing foreign comes along,
the source keeps nothing of J, and the target serves on its own."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from carving import MOVING
from fastapi.testclient import TestClient

from carveout import carve
from carveout.api import create_app
from carveout.carve import Phase
from carveout.carve.capture import carved_tables
from carveout.carve.cutover import ANNOUNCE_LEAD_S, target_spec
from carveout.carve.purge import PURGE_STEP
from carveout.cells import Deployment, Fence, FenceBoard, render_policy
from carveout.cells.policy import Policy
from carveout.core import now_ms
from carveout.datamap import DATA_MAP, TABLES
from carveout.storage import Store, table_digest


def moving_digest(store: Store, codes: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    return {
        t.name: table_digest(store, t.name, TABLES[t.name].c.domicile.in_(codes))
        for t in carved_tables()
    }


def test_full_carve_moves_j_exactly_and_leaves_nothing_behind(loaded: Deployment) -> None:
    source = loaded.cell("global")
    expected = moving_digest(source.store, MOVING)
    shas = {r for r in source.blobs.list()}
    spec = carve.start(loaded, "US,CA,AU,NZ", "na-anz", primary_site="us", backup_site="sg")
    outcome = carve.run(loaded, spec)

    target = loaded.cell("na-anz")
    assert moving_digest(target.store, MOVING) == expected
    assert outcome.verify is not None and outcome.verify.ok and outcome.verify.chunks > 0
    assert outcome.leaks is not None and outcome.leaks.leaks == 0
    assert outcome.purge is not None and outcome.purge.remaining_rows == 0
    # Deleted in steps of PURGE_STEP rows (J's events take several): every row of J once.
    assert expected["events"][0] > PURGE_STEP
    assert {t: outcome.purge.rows[t] for t in expected} == {t: n for t, (n, _d) in expected.items()}
    assert outcome.cutover is not None and outcome.cutover.pause_ms > 0
    # The fence's steps ran in the order that makes the pause safe: the source is sealed before
    # the last changes are read, and routing switches only once the target has them all.
    assert [name for name, _ms in outcome.cutover.steps] == [
        "raise fence",
        "drain in-flight writes",
        "seal source",
        "last changes (catch-up)",
        "hand over keys",
        "target capture on",
        "target counters from its own events",
        "switch routing (policy file)",
        "release fence",
    ]
    # Routing: J to the new cell, everything else stays.
    assert loaded.cell_for("CA").name == "na-anz" and loaded.cell_for("GB").name == "global"
    assert loaded.policy.cell("na-anz").backup_site == "sg"
    # The source holds no row of J, and no blob only J used.
    for table in DATA_MAP.tables:
        tbl = TABLES[table.name]
        with source.store.connect() as conn:
            n = conn.execute(
                sa.select(sa.func.count()).select_from(tbl).where(tbl.c.domicile.in_(MOVING))
            ).scalar_one()
        assert n == 0, table.name
    assert set(target.blobs.list()) <= shas
    # The target's counters come from its own events only.
    with target.store.connect() as conn:
        own_watches = conn.exec_driver_sql(
            "SELECT count(*) FROM events e JOIN videos v ON v.id = e.video_id WHERE e.kind='watch'"
        ).scalar_one()
        counted = conn.exec_driver_sql("SELECT sum(watches) FROM video_stats").scalar_one()
    assert counted == own_watches
    # Carve bookkeeping is gone from the source, and no capture trigger is left.
    with source.store.connect() as conn:
        triggers = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type='trigger' AND name LIKE 'carve%'"
            )
        ]
        assert conn.exec_driver_sql("SELECT count(*) FROM carve_changes").scalar_one() == 0
    assert triggers and all(t.startswith("carve_seal_") for t in triggers)
    assert carve.in_progress(loaded) == []
    # Keys moved with their users: the target can open every carved user's sealed fields,
    # and the source holds no key of J (J's rows in its older backups are unreadable).
    users = DATA_MAP.table("users")
    with target.store.connect() as conn:
        carved = conn.execute(sa.select(TABLES["users"])).all()
    opened = target.vault.open_rows(users, carved)
    assert len(opened) == target.vault.keys.count(MOVING) > 0
    assert all(u["handle"] and u["email"] for u in opened)
    assert target.vault.keys.domiciles() <= set(MOVING)
    assert source.vault.keys.count(MOVING) == 0 and source.vault.keys.count() > 0


def test_source_refuses_writes_of_j_after_the_carve(loaded: Deployment) -> None:
    spec = carve.start(loaded, MOVING, "na-anz")
    carve.run(loaded, spec)
    source = loaded.cell("global")
    users = TABLES["users"]
    try:
        with source.store.begin() as conn:
            conn.execute(
                sa.insert(users).values(
                    id="0190a000-0000-7000-8000-000000000001",
                    domicile="CA",
                    handle="late",
                    display_name="Late",
                    email="late@example.com",
                    birth_year=None,
                    password_hash="",
                    status="active",
                    created_at=1,
                )
            )
    except sa.exc.DBAPIError as exc:
        assert carve.is_moved_error(exc)
    else:
        raise AssertionError("the sealed source accepted a write of a carved jurisdiction")


def test_target_serves_with_the_source_gone(loaded: Deployment, tmp_path: Path) -> None:
    source = loaded.cell("global")
    users_map = DATA_MAP.table("users")
    with source.store.connect() as conn:
        rows = conn.execute(
            sa.select(TABLES["users"]).where(TABLES["users"].c.domicile == "CA").limit(1)
        ).all()
    (carved_user,) = source.vault.open_rows(users_map, rows)
    spec = carve.start(loaded, MOVING, "na-anz")
    carve.run(loaded, spec)
    policy = loaded.policy
    loaded.close()
    # Hand over only the target: its folder, its key store and a policy naming it alone. The
    # source's files are moved away, so any hidden dependency on them fails here.
    alone = tmp_path / "handed-over"
    (alone / "cells").mkdir(parents=True)
    (alone / "keys").mkdir()
    shutil.move(str(loaded.data_dir / "cells" / "na-anz"), alone / "cells" / "na-anz")
    shutil.move(str(loaded.data_dir / "keys" / "na-anz"), alone / "keys" / "na-anz")
    shutil.move(str(loaded.data_dir), tmp_path / "old-operator")
    only = Policy(cells=(policy.cell("na-anz"),), sites=policy.sites)
    (alone / "policy.toml").write_text(render_policy(only))
    deployment = Deployment.open(alone)
    try:
        client = TestClient(create_app(deployment))
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
        # A carved user's sealed profile opens with the keys that moved with them.
        profile = client.get(f"/v1/users/{carved_user['id']}", headers=auth)
        assert profile.status_code == 200, profile.text
        assert profile.json()["handle"] == carved_user["handle"]
        clash = client.post(
            "/v1/users", json={**body, "handle": carved_user["handle"], "email": "x@example.com"}
        )
        assert clash.status_code == 409  # handle lookups moved too
        feed: Any = client.get("/v1/feed", headers=auth).json()["items"]
        assert len(feed) == 10
        assert {i["video"]["domicile"] for i in feed} <= set(MOVING)
        video = feed[0]["video"]
        media = client.get(video["media_url"], headers={**auth, "Range": "bytes=0-99"})
        assert media.status_code == 206 and len(media.content) == 100
        watch = {"events": [{"video_id": video["id"], "kind": "watch", "watched_ms": 1000}]}
        assert client.post("/v1/events", headers=auth, json=watch).status_code == 202
        # Social, consent, export and erasure: every family of routes, the source gone.
        who = carved_user["id"]
        assert client.put(f"/v1/users/{who}/follow", headers=auth).status_code == 200
        assert client.put(f"/v1/videos/{video['id']}/like", headers=auth).status_code == 200
        said = client.post(
            f"/v1/videos/{video['id']}/comments", headers=auth, json={"body": "lovely"}
        )
        assert said.status_code == 201, said.text
        listed = client.get(f"/v1/videos/{video['id']}/comments", headers=auth).json()
        assert "lovely" in {c["body"] for c in listed["items"]}
        consent = {"granted": False, "version": "2026-11"}
        assert client.put("/v1/me/consents/training", headers=auth, json=consent).status_code == 200
        export = client.post("/v1/me/exports", headers=auth)
        assert export.status_code == 202
        state = client.get(f"/v1/me/exports/{export.json()['id']}", headers=auth).json()
        assert state["status"] == "done"  # the test client runs background tasks at once
        assert client.get(state["archive"], headers=auth).status_code == 200
        gb = client.post(
            "/v1/users", json={**body, "handle": "brit", "email": "b@example.com", "country": "GB"}
        )
        assert gb.status_code == 422  # no cell of the handed-over deployment serves GB
        assert "serves jurisdiction GB" in gb.json()["detail"]
        erased = client.delete("/v1/me", headers=auth)
        assert erased.status_code == 200 and erased.json()["cell"] == "na-anz"
    finally:
        deployment.close()


def test_models_stay_inside_their_jurisdictions(loaded: Deployment) -> None:
    """The source's model learned from J: it leaves with J's rows, and the source retrains;
    the target's model is trained on the target's rows alone."""
    import json

    from carveout.recommend import train_cell

    source = loaded.cell("global")
    before = train_cell(source)
    assert set(MOVING) <= set(before.jurisdictions)
    outcome = carve.run(loaded, carve.start(loaded, MOVING, "na-anz"))
    assert outcome.purge is not None and outcome.purge.models == [before.version]

    def lineages(root: Path) -> list[set[str]]:
        return [
            set(json.loads(p.read_text())["jurisdictions"])
            for p in sorted((root / "models").glob("*/manifest.json"))
        ]

    target_models = lineages(loaded.cell("na-anz").root)
    source_models = lineages(source.root)
    assert target_models and all(lin <= set(MOVING) for lin in target_models)
    assert source_models and all(not (lin & set(MOVING)) for lin in source_models)


def test_servers_hear_of_the_cutover_before_its_fence(
    loaded: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-up announces the target (servers open and warm it meanwhile); the fence goes
    up no sooner than ANNOUNCE_LEAD_S after, and the announcement goes with the fence."""
    fences = FenceBoard(loaded.data_dir)
    spec = carve.start(loaded, MOVING, "na-anz")
    carve.run(loaded, spec, through=Phase.CATCHUP)
    told = fences.announced()
    assert told is not None and told.target == target_spec(spec)
    assert fences.current() is None  # nothing held yet
    seen: list[tuple[Fence | None, int]] = []
    raise_fence = FenceBoard.raise_fence

    def spy(self: FenceBoard, fence: Fence) -> None:
        seen.append((self.announced(), now_ms()))
        raise_fence(self, fence)

    monkeypatch.setattr(FenceBoard, "raise_fence", spy)
    carve.run(loaded, spec, through=Phase.CUTOVER)  # resumed: the same announcement holds
    [(announced, raised_at)] = seen
    assert announced == told
    assert raised_at - told.raised_at >= ANNOUNCE_LEAD_S * 1000
    assert fences.announced() is None and fences.current() is None


def test_an_aborted_carve_withdraws_its_announcement(loaded: Deployment) -> None:
    fences = FenceBoard(loaded.data_dir)
    spec = carve.start(loaded, MOVING, "na-anz")
    carve.run(loaded, spec, through=Phase.CATCHUP)
    assert fences.announced() is not None
    carve.abort(loaded, spec)
    assert fences.announced() is None
