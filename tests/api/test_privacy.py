"""User data management through the API: access exports, erasure with receipts, consent."""

from __future__ import annotations

import io
import json
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apiclient import Api, auth

from carveout import privacy
from carveout.core import Conflict
from carveout.datamap import DATA_MAP, TABLES
from carveout.privacy import ErasureGone
from carveout.privacy.scan import cell_paths, scan

SUBJECT = {
    "handle": "zq_erasable_7f3k",
    "display_name": "Quentin Zebulon-Erasable",
    "email": "quentin.zebulon.7f3k@example.org",
}


def _user_rows(api: Api, user_id: str) -> dict[str, int]:
    """Rows naming the user, per data-map table (any subject column)."""
    cell = api.deployment.cell("global")
    out = {}
    with cell.store.connect() as conn:
        for table in DATA_MAP.tables:
            if not table.subject_columns:
                continue
            tbl = TABLES[table.name]
            match = sa.or_(*(tbl.c[c] == user_id for c in table.subject_columns))
            out[table.name] = conn.execute(
                sa.select(sa.func.count()).select_from(tbl).where(match)
            ).scalar_one()
    return out


def _active_life(api: Api) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """A subject who uploads, comments, likes, follows, reports and watches; and a friend."""
    me = api.signup("CA", **SUBJECT)
    friend = api.signup("GB")
    mine = api.upload(me, seed=1)
    theirs = api.upload(friend, seed=2)
    c = api.client
    assert c.put(f"/v1/users/{friend['X-User']}/follow", headers=auth(me)).status_code < 300
    assert c.put(f"/v1/users/{me['X-User']}/follow", headers=auth(friend)).status_code < 300
    assert c.put(f"/v1/videos/{theirs['id']}/like", headers=auth(me)).status_code < 300
    for n in range(3):
        r = c.post(
            f"/v1/videos/{theirs['id']}/comments", headers=auth(me), json={"body": f"nice {n}"}
        )
        assert r.status_code == 201, r.text
    r = c.post(f"/v1/videos/{mine['id']}/comments", headers=auth(friend), json={"body": "yours"})
    assert r.status_code == 201
    events = [
        {"video_id": theirs["id"], "kind": "watch", "watched_ms": 4000},
        {"video_id": theirs["id"], "kind": "impression"},
    ]
    assert c.post("/v1/events", headers=auth(me), json={"events": events}).status_code < 300
    r = c.put(
        "/v1/me/consents/training", headers=auth(me), json={"granted": True, "version": "2026-11"}
    )
    assert r.status_code == 200, r.text
    return me, friend, {"mine": mine, "theirs": theirs}


def _export(api: Api, headers: dict[str, str]) -> zipfile.ZipFile:
    r = api.client.post("/v1/me/exports", headers=auth(headers))
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    for _ in range(200):
        state = api.client.get(f"/v1/me/exports/{rid}", headers=auth(headers)).json()
        if state["status"] != "running":
            break
        time.sleep(0.05)
    assert state["status"] == "done", state
    got = api.client.get(state["archive"], headers=auth(headers))
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(got.content))


def test_export_covers_every_data_map_column_of_the_subject(api: Api) -> None:
    me, _friend, vids = _active_life(api)
    archive = _export(api, me)
    names = set(archive.namelist())
    for table in privacy.subject_tables():
        body = json.loads(archive.read(f"data/{table.name}.json"))
        # Every column the data map lists is described and present in every row.
        assert set(body["columns"]) == set(table.column_names), table.name
        for row in body["rows"]:
            assert set(row) == set(table.column_names), table.name
    users = json.loads(archive.read("data/users.json"))["rows"]
    assert [(u["handle"], u["email"], u["birth_year"]) for u in users] == [
        (SUBJECT["handle"], SUBJECT["email"], 1990)
    ]
    assert users[0]["password_hash"] == "[credential: withheld]"
    comments = json.loads(archive.read("data/comments.json"))["rows"]
    assert sorted(c["body"] for c in comments) == ["nice 0", "nice 1", "nice 2"]
    follows = json.loads(archive.read("data/follows.json"))["rows"]
    assert len(follows) == 2  # who they follow, and who follows them (id withheld)
    assert "[another person: withheld]" in {f["follower_id"] for f in follows}
    videos = json.loads(archive.read("data/videos.json"))["rows"]
    assert [v["id"] for v in videos] == [vids["mine"]["id"]]
    media = [n for n in names if n.startswith("media/")]
    assert len(media) == 1
    assert json.loads(archive.read("derived/recommender.json"))
    assert "Staff who read your data" in archive.read("summary.txt").decode()
    # Exports are the requester's own: another user cannot see or fetch them.
    other = api.signup("CA")
    rid = json.loads(archive.read("data/privacy_requests.json"))["rows"][0]["id"]
    assert api.client.get(f"/v1/me/exports/{rid}", headers=auth(other)).status_code == 404
    r = api.client.get(f"/v1/me/exports/{rid}/archive", headers=auth(other))
    assert r.status_code == 404


def test_erasure_reaches_every_store_and_returns_an_exact_receipt(api: Api) -> None:
    me, friend, vids = _active_life(api)
    _export(api, me)  # an archive exists and must go too
    uid = me["X-User"]
    cell = api.deployment.cell("global")
    stats = TABLES["video_stats"]
    with cell.store.connect() as conn:
        before = conn.execute(
            sa.select(stats).where(stats.c.video_id == vids["theirs"]["id"])
        ).one()
    rows_before = _user_rows(api, uid)

    r = api.client.delete("/v1/me", headers=auth(me))
    assert r.status_code == 200, r.text
    receipt = r.json()
    lines = {line["store"]: line["records"] for line in receipt["stores"]}
    assert lines["key store"] == 1
    # Two sent as events, one logged by the like and three by the comments.
    assert lines["database: events"] == rows_before["events"] == 6
    assert lines["database: comments"] == 3
    assert lines["database: follows"] == 2
    assert lines["database: likes"] == 1
    assert lines["database: videos"] == 1
    assert lines["database: consents"] == 1
    assert lines["blob store"] == 1
    assert lines["exports"] == 1
    assert lines["database: users"] == 1
    assert {r["store"] for r in receipt["retained"]} == {
        "database: privacy_requests",
        "database: staff_access_log",
    }
    after = _user_rows(api, uid)
    # Nothing names them any more but their erased account row and the retained records.
    assert {k: v for k, v in after.items() if v} == {"users": 1, "privacy_requests": 2}
    # The account is gone for every purpose.
    assert api.client.get("/v1/me", headers=auth(me)).status_code == 401
    login = {"login": SUBJECT["email"], "password": "correct horse battery"}
    assert api.client.post("/v1/sessions", json=login).status_code == 401
    assert api.client.get(f"/v1/users/{uid}", headers=auth(friend)).status_code == 404
    # Their comments are unlinked and blank; the friend's comment on their (gone) video stays.
    comments = api.client.get(f"/v1/videos/{vids['theirs']['id']}/comments", headers=auth(friend))
    assert comments.json()["items"] == []
    # The counters of the video they watched and liked no longer count them, at once.
    with cell.store.connect() as conn:
        now = conn.execute(sa.select(stats).where(stats.c.video_id == vids["theirs"]["id"])).one()
    assert (now.watches, now.likes, now.comments, now.impressions) == (
        before.watches - 1,
        before.likes - 1,
        before.comments - 3,
        before.impressions - 1,
    )
    # The handle and email are free again.
    again = api.signup("CA", **SUBJECT)
    assert again["X-User"] != uid


# SQLite only: the scan reads the embedded cell's files (PostgreSQL's data directory is
# scanned by `carveout bench privacy`).
@pytest.mark.parametrize("backend", ["sqlite"])
def test_erased_subject_is_nowhere_in_the_cells_files(api: Api) -> None:
    me, _friend, _vids = _active_life(api)
    cell = api.deployment.cell("global")
    paths = cell_paths(cell, api.deployment.data_dir)
    _export(api, me)
    # Sealed from the start: the database never held them in plaintext, only the export did.
    hits = scan(paths, SUBJECT.values())
    assert hits and all("exports" in str(h.path) for h in hits), hits
    copy = api.tmp / "old-copy.db"  # an older copy of the database, as any backup would be
    with sqlite3.connect(cell.root / "cell.db") as live, sqlite3.connect(copy) as dest:
        live.backup(dest)
    assert api.client.delete("/v1/me", headers=auth(me)).status_code == 200
    with cell.store.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert scan(paths, SUBJECT.values()) == []
    # An older copy of the database still has their sealed row, and it is unreadable now.
    raw = sa.create_engine(f"sqlite:///{copy}")
    with raw.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM users WHERE id = :i"), {"i": me["X-User"]}).one()
    raw.dispose()
    assert str(row.email).startswith("s1:")
    opened = cell.vault.open_rows(DATA_MAP.table("users"), [row])
    assert (opened[0]["email"], opened[0]["handle"], opened[0]["display_name"]) == (None,) * 3


def test_second_erasure_conflicts_and_erased_is_gone(api: Api) -> None:
    me = api.signup("CA")
    cell = api.deployment.cell("global")
    rid = privacy.start_erasure(cell, me["X-User"], requested_by="officer")
    with pytest.raises(Conflict, match="already running"):
        privacy.start_erasure(cell, me["X-User"], requested_by="officer")
    privacy.run_erasure(cell, rid)
    with pytest.raises(ErasureGone):
        privacy.start_erasure(cell, me["X-User"], requested_by="officer")
    assert api.client.delete("/v1/me", headers=auth(me)).status_code == 401


def test_erasure_interrupted_halfway_resumes_to_the_same_receipt(api: Api, tmp_path: Path) -> None:
    me, _friend, _vids = _active_life(api)
    _export(api, me)
    cell = api.deployment.cell("global")
    expected = _user_rows(api, me["X-User"])
    # A real failure halfway: the export archive's path is a folder, so deleting it fails
    # after the key, events and tables steps have committed.
    folder = privacy.export_dir(cell)
    (archive,) = folder.iterdir()
    archive.unlink()
    archive.mkdir()
    rid = privacy.start_erasure(cell, me["X-User"], requested_by=me["X-User"])
    with pytest.raises(IsADirectoryError):
        privacy.run_erasure(cell, rid)
    assert cell.vault.keys.keys([me["X-User"]]) == {}  # shredded before anything else
    archive.rmdir()
    (receipt,) = privacy.resume_erasures(cell)
    lines = {line.store: line.records for line in receipt.lines}
    assert lines["database: comments"] == expected["comments"] == 3
    assert lines["database: events"] == expected["events"]
    assert lines["key store"] == 1 and lines["exports"] == 1 and lines["database: users"] == 1
    assert privacy.resume_erasures(cell) == []
    assert privacy.run_erasure(cell, rid).to_json() == receipt.to_json()


def test_withdrawing_personalisation_switches_the_feed_at_once(api: Api) -> None:
    me = api.signup("CA")
    api.upload(api.signup("GB"), seed=3)
    r = api.client.put(
        "/v1/me/consents/personalisation",
        headers=auth(me),
        json={"granted": False, "version": "2026-11"},
    )
    assert r.status_code == 200 and r.json()["granted"] is False
    feed = api.client.get("/v1/feed", headers=auth(me)).json()
    assert feed["items"] and {i["source"] for i in feed["items"]} == {
        "popular (personalisation withdrawn)"
    }
    states = {s["purpose"]: s for s in api.client.get("/v1/me/consents", headers=auth(me)).json()}
    assert states["personalisation"]["granted"] is False
    assert states["training"] == {
        "purpose": "training",
        "granted": True,
        "version": "default",
        "at": None,
    }
    bad = api.client.put(
        "/v1/me/consents/ads", headers=auth(me), json={"granted": True, "version": "1"}
    )
    assert bad.status_code == 422 and "unknown consent purpose" in bad.text
