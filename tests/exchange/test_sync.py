"""The content exchange between two live cells: what crosses, what B decides, what B's users do."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from exchange_env import Env, all_text, auth, count

from carveout import exchange
from carveout.datamap import TABLES
from carveout.moderation import ListedHash, add_hashes, create_bank, hash_video

VIDEOS, GUESTS, LOG = TABLES["videos"], TABLES["guest_videos"], TABLES["exchange_log"]


def test_a_guest_copy_carries_public_fields_and_the_handle_only(env: Env) -> None:
    gb = env.signup("GB")
    body = env.users[gb["id"]]
    v = env.upload(gb, 1, caption="sunset over the pier")
    report = env.sync()
    assert report.ok and report.copied == {"published": 1} and report.bytes > 0

    with env.na.store.connect() as conn:
        row = conn.execute(sa.select(VIDEOS).where(VIDEOS.c.id == v["id"])).one()
    assert row.origin_cell == "global" and row.domicile == "GB"
    assert row.caption == "sunset over the pier" and row.status == "published"
    assert row.creator_id != gb["id"]  # a pseudonym keyed by the origin's secret
    assert exchange.guest(env.na, v["id"]).creator_handle == body["handle"]
    # The same media bytes, re-hashed on arrival.
    sha = exchange.guest(env.na, v["id"]).sha256
    assert env.na.blobs.local_path(sha).read_bytes() == env.glob.blobs.local_path(sha).read_bytes()

    # Byte level: nothing else of the creator is anywhere in B (every value of every table).
    text = all_text(env.na)
    for secret in (body["email"], body["display_name"], gb["id"], "1990"):
        assert secret not in text, secret
    # Even the handle is stored sealed, under a key B destroys when the copies are withdrawn.
    assert body["handle"] not in text


def test_the_sqlite_file_of_b_holds_no_personal_field_of_the_creator(sqlite_env: Env) -> None:
    env = sqlite_env
    gb = env.signup("GB")
    body = env.users[gb["id"]]
    env.upload(gb, 2)
    env.sync()
    with env.na.store.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    folder = env.na.root
    raw = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    for secret in (body["email"], body["display_name"], gb["id"]):
        assert secret.encode() not in raw, secret


def test_b_users_watch_like_comment_and_their_rows_are_domiciled_in_b(env: Env) -> None:
    gb, ca = env.signup("GB"), env.signup("CA")
    v = env.upload(gb, 3)
    before_glob = env.fingerprints()["global"]
    env.sync()
    r = env.client.get(f"/v1/videos/{v['id']}", headers=auth(ca))
    assert r.status_code == 200, r.text
    assert r.json()["guest_of"] == "global" and r.json()["creator_handle"] == "maker1"
    media = env.client.get(f"/v1/videos/{v['id']}/media", headers=auth(ca))
    origin_file = env.glob.blobs.local_path(exchange.guest(env.na, v["id"]).sha256)
    assert media.status_code == 200 and media.content == origin_file.read_bytes()
    feed = env.client.get("/v1/feed", headers=auth(ca)).json()["items"]
    assert [i["video"]["guest_of"] for i in feed if i["video"]["id"] == v["id"]] == ["global"]

    assert env.client.put(f"/v1/videos/{v['id']}/like", headers=auth(ca)).status_code == 200
    events = {"events": [{"video_id": v["id"], "kind": "watch", "watched_ms": 1500}]}
    assert env.client.post("/v1/events", headers=auth(ca), json=events).status_code == 202
    c = env.client.post(f"/v1/videos/{v['id']}/comments", headers=auth(ca), json={"body": "lovely"})
    assert c.status_code == 201, c.text
    likes, ev = TABLES["likes"], TABLES["events"]
    assert count(env.na, "likes", likes.c.video_id == v["id"], likes.c.domicile == "CA") == 1
    assert count(env.na, "events", ev.c.video_id == v["id"], ev.c.domicile == "CA") >= 3
    assert count(env.na, "comments", TABLES["comments"].c.domicile == "CA") == 1
    # Nothing of it reached the origin cell: B's users' data stays in B (the origin only
    # appended its own "sent" log line).
    after = env.fingerprints()["global"]
    assert [t for t in before_glob.diff(after) if "exchange_log" not in t] == []


def test_guest_content_is_read_only_in_b(env: Env) -> None:
    gb, ca = env.signup("GB"), env.signup("CA")
    v = env.upload(gb, 4)
    env.sync()
    before = env.fingerprints()
    r = env.client.delete(f"/v1/videos/{v['id']}", headers=auth(ca))
    assert r.status_code == 409
    assert "guest content from cell 'global'" in r.json()["detail"]
    assert env.fingerprints()["na-anz"].diff(before["na-anz"]) == []
    # Its creator deletes it where it lives.
    assert env.client.delete(f"/v1/videos/{v['id']}", headers=auth(gb)).status_code == 204
    assert env.client.get(f"/v1/videos/{v['id']}", headers=auth(gb)).status_code == 404


def test_b_rejects_what_a_published_when_its_own_bank_has_the_hash(env: Env) -> None:
    gb, ca = env.signup("GB"), env.signup("CA")
    v = env.upload(gb, 5)
    assert v["status"] == "published"  # A has no such bank
    create_bank(env.na.store, "csam-na", "US", action="reject", ground="illegal")
    frames = hash_video(env.clip(5)).hexes
    add_hashes(env.na.store, "csam-na", [ListedHash(h, "test") for h in frames])
    report = env.sync()
    assert report.copied == {"rejected": 1}
    assert exchange.guest(env.na, v["id"]).visibility == "rejected"
    assert env.client.get(f"/v1/videos/{v['id']}", headers=auth(ca)).status_code == 404
    assert env.client.get(f"/v1/videos/{v['id']}/media", headers=auth(ca)).status_code == 404
    feed = env.client.get("/v1/feed", headers=auth(ca)).json()["items"]
    assert v["id"] not in {i["video"]["id"] for i in feed}
    # A's decision is untouched: still published there.
    fr = env.signup("GB")
    assert env.client.get(f"/v1/videos/{v['id']}", headers=auth(fr)).status_code == 200
    entry = exchange.read_log(env.na.store, video_id=v["id"])[0]
    assert entry.action == "copied" and entry.outcome.startswith("rejected")


def test_a_bank_added_later_reaches_copies_already_held_with_remoderate(env: Env) -> None:
    gb, ca = env.signup("GB"), env.signup("CA")
    v = env.upload(gb, 6)
    env.sync()
    assert env.client.get(f"/v1/videos/{v['id']}", headers=auth(ca)).status_code == 200
    create_bank(env.na.store, "later", "US", action="hold")
    add_hashes(env.na.store, "later", [ListedHash(h, "t") for h in hash_video(env.clip(6)).hexes])
    report = env.sync(remoderate_kept=True)
    assert report.remoderated == 1
    assert env.client.get(f"/v1/videos/{v['id']}", headers=auth(ca)).status_code == 404
    assert exchange.guest(env.na, v["id"]).visibility == "held"


def test_resync_is_idempotent(env: Env) -> None:
    gb = env.signup("GB")
    for seed in (7, 8):
        env.upload(gb, seed)
    env.sync()
    before = env.fingerprints()["na-anz"]
    again = env.sync()
    assert again.copied == {} and again.kept == 2 and again.withdrawn == {}
    changed = before.diff(env.fingerprints()["na-anz"])
    # Only the bookkeeping of "the origin still publishes it" moves.
    assert all("guest_videos" in c for c in changed), changed
    assert count(env.na, "videos") == 2 and len(list(env.na.blobs.list())) == 2


def test_the_log_records_both_sides_and_refuses_rewrites(env: Env) -> None:
    gb = env.signup("GB")
    v = env.upload(gb, 9)
    env.sync()
    [received] = exchange.read_log(env.na.store)
    [sent] = exchange.read_log(env.glob.store)
    assert (received.direction, received.origin_cell, received.receiving_cell) == (
        "received",
        "global",
        "na-anz",
    )
    assert received.video_id == sent.video_id == v["id"] and received.bytes == sent.bytes > 0
    assert sent.direction == "sent"
    for cell in (env.na, env.glob):
        for stmt in (sa.update(LOG).values(outcome="forged"), sa.delete(LOG)):
            try:
                with cell.store.begin() as conn:
                    conn.execute(stmt)
            except sa.exc.DBAPIError as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError("the exchange log accepted a rewrite")
    assert len(exchange.read_log(env.na.store)) == 1


def test_concurrent_log_writers_never_collide(env: Env) -> None:
    """Syncs from one origin to different receivers append to the origin's log at once."""
    import threading

    from carveout.exchange import log

    def write(n: int) -> None:
        for i in range(15):
            with env.glob.store.begin() as conn:
                log.append(
                    conn,
                    run_id=f"run-{n}",
                    direction="sent",
                    origin="global",
                    receiver=f"r{n}",
                    video_id=f"v{i}",
                    action="copied",
                    nbytes=1,
                    outcome="sent",
                )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.seq for e in exchange.read_log(env.glob.store, limit=100)]
    assert len(seqs) == 45 and len(set(seqs)) == 45


def test_a_second_sync_into_the_same_cell_is_refused_while_one_runs(env: Env) -> None:
    import fcntl

    from carveout.core import Conflict

    env.upload(env.signup("GB"), 41)
    before = env.fingerprints()["na-anz"]
    with (env.na.root / "exchange.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(Conflict, match="is running"):
            env.sync()
        fcntl.flock(held, fcntl.LOCK_UN)
    assert env.fingerprints()["na-anz"].diff(before) == []
    assert env.sync().copied == {"published": 1}


def test_a_reviewers_decision_on_a_guest_copy_survives_remoderation(env: Env) -> None:
    from carveout.accounts import staff

    gb, ca, mod = env.signup("GB"), env.signup("CA"), env.signup("US")
    staff.grant(env.na, mod["id"], "moderator", "tests")
    v = env.upload(gb, 42)["id"]
    env.sync()
    item = env.client.post(
        "/v1/reports",
        headers=auth(ca),
        json={"target_kind": "video", "target_id": v, "reason": "not for here"},
    ).json()
    r = env.client.post(
        f"/v1/moderation/queue/{item['id']}/decision",
        headers=auth(mod),
        json={
            "visibility": "rejected",
            "facts": "breaks our terms",
            "ground": "terms",
            "rule": "local terms",
        },
    )
    assert r.status_code == 200, r.text
    assert env.client.get(f"/v1/videos/{v}", headers=auth(ca)).status_code == 404
    env.sync(remoderate_kept=True)  # B's automated checks alone would publish it
    assert env.client.get(f"/v1/videos/{v}", headers=auth(ca)).status_code == 404
    # ... and the origin is unaffected by B's decision.
    assert env.client.get(f"/v1/videos/{v}", headers=auth(env.signup("GB"))).status_code == 200


def test_bs_per_jurisdiction_restriction_applies_to_a_guest_copy(env: Env) -> None:
    gb, ca, us = env.signup("GB"), env.signup("CA"), env.signup("US")
    v = env.upload(gb, 43)["id"]
    create_bank(env.na.store, "ca-only", "CA", action="restrict", ground="illegal")
    add_hashes(
        env.na.store, "ca-only", [ListedHash(h, "t") for h in hash_video(env.clip(43)).hexes]
    )
    assert env.sync().copied == {"restricted": 1}
    assert env.client.get(f"/v1/videos/{v}", headers=auth(ca)).status_code == 451
    assert env.client.get(f"/v1/videos/{v}", headers=auth(us)).status_code == 200
    assert env.client.get(f"/v1/videos/{v}", headers=auth(gb)).status_code == 200  # origin


def test_the_serve_housekeeping_tick_brings_guest_copies(sqlite_env: Env) -> None:
    from carveout.api.housekeeping import tick
    from carveout.core import now_ms

    gb = sqlite_env.signup("GB")
    v = sqlite_env.upload(gb, 1)
    assert count(sqlite_env.na, "guest_videos") == 0
    tick(sqlite_env.deployment, now_ms(), 24 * 3_600_000)
    assert exchange.guest(sqlite_env.na, v["id"]).origin_cell == "global"
