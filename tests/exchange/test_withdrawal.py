"""Withdrawal: what the origin stops publishing leaves the receiving cell at the next sync."""

from __future__ import annotations

from exchange_env import Env, all_text, auth, count

from carveout import exchange
from carveout.accounts import staff
from carveout.datamap import TABLES
from carveout.exchange import handles
from carveout.privacy import erase
from carveout.privacy.scan import cell_paths, scan

LIKES = TABLES["likes"]


def _copied(env: Env, seed: int) -> tuple[dict[str, str], dict[str, str], str]:
    gb, ca = env.signup("GB"), env.signup("CA")
    v = env.upload(gb, seed)["id"]
    env.sync()
    assert env.client.put(f"/v1/videos/{v}/like", headers=auth(ca)).status_code == 200
    return gb, ca, v


def _gone_from_b(env: Env, video_id: str, sha: str) -> None:
    assert exchange.guest(env.na, video_id) is None
    assert count(env.na, "videos", TABLES["videos"].c.id == video_id) == 0
    assert count(env.na, "video_stats", TABLES["video_stats"].c.video_id == video_id) == 0
    assert count(env.na, "blobs", TABLES["blobs"].c.sha256 == sha) == 0
    assert sha not in set(env.na.blobs.list())


def test_a_video_deleted_at_the_origin_is_withdrawn(env: Env) -> None:
    gb, ca, v = _copied(env, 11)
    sha = exchange.guest(env.na, v).sha256
    assert env.client.delete(f"/v1/videos/{v}", headers=auth(gb)).status_code == 204
    # Until the next sync B still shows it; then it is gone, media included.
    assert env.client.get(f"/v1/videos/{v}", headers=auth(ca)).status_code == 200
    report = env.sync()
    assert report.withdrawn == {"deleted at the origin": 1}
    _gone_from_b(env, v, sha)
    assert env.client.get(f"/v1/videos/{v}", headers=auth(ca)).status_code == 404
    # The CA user's like is their data: it stays in B, with the id as an opaque reference.
    assert count(env.na, "likes", LIKES.c.video_id == v, LIKES.c.domicile == "CA") == 1
    entry = exchange.read_log(env.na.store, video_id=v)[0]
    assert (entry.action, entry.outcome) == ("withdrawn", "deleted at the origin")


def test_a_video_rejected_by_the_origins_reviewer_is_withdrawn(env: Env) -> None:
    _gb, _ca, v = _copied(env, 12)
    sha = exchange.guest(env.na, v).sha256
    reporter, mod = env.signup("GB"), env.signup("GB")
    staff.grant(env.glob, mod["id"], "moderator", "tests")
    item = env.client.post(
        "/v1/reports",
        headers=auth(reporter),
        json={"target_kind": "video", "target_id": v, "reason": "spam"},
    ).json()
    r = env.client.post(
        f"/v1/moderation/queue/{item['id']}/decision",
        headers=auth(mod),
        json={"visibility": "rejected", "facts": "spam", "rule": "spam", "ground": "terms"},
    )
    assert r.status_code == 200, r.text
    assert env.sync().withdrawn == {"rejected at the origin": 1}
    _gone_from_b(env, v, sha)


def test_an_erased_creator_leaves_no_handle_in_b(env: Env) -> None:
    gb, _ca, v = _copied(env, 13)
    other = env.signup("GB")
    kept = env.upload(other, 14)["id"]
    env.sync()
    handle = env.users[gb["id"]]["handle"]
    creator = exchange.guest(env.na, v)
    assert creator is not None and creator.creator_handle == handle
    erase(env.glob, gb["id"], requested_by="tests")
    report = env.sync()
    assert sum(report.withdrawn.values()) == 1 and report.kept == 1
    assert exchange.guest(env.na, v) is None
    # The handle's key is destroyed: no copy of it is readable in B, on any byte of any file
    # of B (database, WAL, blobs, both key stores).
    assert handles.key_store(env.na).keys([creator.creator_id], fresh=True) == {}
    assert handle not in all_text(env.na)
    assert scan(cell_paths(env.na, env.deployment.data_dir), [handle]) == []
    # Another creator's guest copy is untouched.
    assert exchange.guest(env.na, kept) is not None


def test_a_blob_shared_with_another_guest_copy_stays_until_both_are_gone(env: Env) -> None:
    gb = env.signup("GB")
    first = env.upload(gb, 15)["id"]
    second = env.upload(gb, 15, caption="same clip again")["id"]
    env.sync()
    sha = exchange.guest(env.na, first).sha256
    env.client.delete(f"/v1/videos/{first}", headers=auth(gb))
    env.sync()
    assert sha in set(env.na.blobs.list()) and exchange.guest(env.na, second) is not None
    env.client.delete(f"/v1/videos/{second}", headers=auth(gb))
    env.sync()
    _gone_from_b(env, second, sha)


def test_the_shared_blob_test_really_shares_one_file(env: Env) -> None:
    gb = env.signup("GB")
    a, b = env.upload(gb, 16)["id"], env.upload(gb, 16)["id"]
    report = env.sync()
    assert exchange.guest(env.na, a).sha256 == exchange.guest(env.na, b).sha256
    assert len(list(env.na.blobs.list())) == 1
    # The file moved once, and the log says so.
    assert report.bytes == env.clip(16).stat().st_size
    moved = sorted(e.bytes for e in exchange.read_log(env.na.store))
    assert moved == [0, env.clip(16).stat().st_size]
