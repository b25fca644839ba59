"""Upload moderation end to end over the API: banks, outcomes, review, appeals, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from carveout.accounts import staff, verify_chain
from carveout.api import create_app
from carveout.cells import Deployment, init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.datamap import TABLES
from carveout.moderation import RULES_FILE, hash_video
from carveout.storage import fingerprint
from media import make_video

LOG = TABLES["staff_access_log"]


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.deployment: Deployment = init_data_dir(
            tmp / "data", one_cell_policy(content_exchange=False)
        )
        self.client = TestClient(create_app(self.deployment))
        self.cell = self.deployment.cell("global")
        self.n = 0

    def signup(self, country: str) -> dict[str, str]:
        self.n += 1
        r = self.client.post(
            "/v1/users",
            json={
                "handle": f"user{self.n}",
                "display_name": "U",
                "email": f"u{self.n}@example.com",
                "password": "correct horse battery",
                "birth_year": 1990,
                "country": country,
            },
        )
        assert r.status_code == 201, r.text
        data = r.json()
        return {"Authorization": f"Bearer {data['token']}", "id": data["user"]["id"]}

    def make_moderator(self, user: dict[str, str]) -> None:
        staff.grant(self.cell, user["id"], "moderator", granted_by="tests")

    def upload(self, who: dict[str, str], path: Path, caption: str = "a clip") -> Any:
        with path.open("rb") as fh:
            return self.client.post(
                "/v1/videos",
                headers=h(who),
                files={"file": ("clip.mp4", fh, "video/mp4")},
                data={"caption": caption},
            )

    def feed_ids(self, who: dict[str, str]) -> set[str]:
        r = self.client.get("/v1/feed", headers=h(who))
        assert r.status_code == 200, r.text
        return {
            item["video"]["id"] if "video" in item else item["id"] for item in r.json()["items"]
        }

    def fingerprint(self) -> Any:
        return fingerprint(self.cell.store, self.cell.blobs)


def h(who: dict[str, str], purpose: str | None = None) -> dict[str, str]:
    out = {"Authorization": who["Authorization"]}
    if purpose is not None:
        out["X-Access-Purpose"] = purpose
    return out


REVIEW = "reviewing reported and held content"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.client.close()
    w.deployment.close()


def _bank(w: World, mod: dict[str, str], name: str, **kw: str) -> None:
    body = {"name": name, "jurisdiction": "US", **kw}
    r = w.client.post("/v1/moderation/banks", headers=h(mod), json=body)
    assert r.status_code == 201, r.text


def _import(w: World, mod: dict[str, str], bank: str, path: Path) -> int:
    text = "\n".join(hash_video(path).hexes)
    r = w.client.post(f"/v1/moderation/banks/{bank}/hashes", headers=h(mod), json={"text": text})
    assert r.status_code == 200, r.text
    return int(r.json()["added"])


def test_bank_match_rejects_and_a_new_hash_applies_to_the_next_upload(world: World) -> None:
    mod, creator, viewer = world.signup("US"), world.signup("CA"), world.signup("CA")
    world.make_moderator(mod)
    banned = make_video(world.tmp / "banned.mp4", seconds=3, seed=11)
    clean = make_video(world.tmp / "clean.mp4", seconds=3, seed=12)
    r = world.client.post(
        "/v1/moderation/banks", headers=h(creator), json={"name": "x", "jurisdiction": "US"}
    )
    assert r.status_code == 403
    _bank(
        world,
        mod,
        "terror",
        ground="illegal",
        category="STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
    )
    first = world.upload(creator, banned)
    assert first.status_code == 201 and first.json()["status"] == "published"
    assert _import(world, mod, "terror", banned) == 3
    second = world.upload(creator, banned)
    assert second.status_code == 201 and second.json()["status"] == "rejected"
    assert world.upload(creator, clean).json()["status"] == "published"
    vid = second.json()["id"]
    assert vid not in world.feed_ids(viewer)
    assert world.client.get(f"/v1/videos/{vid}", headers=h(viewer)).status_code == 404
    (decision,) = world.client.get(f"/v1/videos/{vid}/decisions", headers=h(creator)).json()
    assert decision["decision_visibility"] == "rejected"
    assert decision["decision_ground"] == "illegal"
    assert decision["automated_detection"] and decision["automated_decision"]
    assert decision["category"] == "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY"
    assert decision["territorial_scope"] == ["*"]
    assert "3 of 3 sampled frames" in decision["facts"]
    assert (
        world.client.get(f"/v1/videos/{vid}/decisions", headers=h(viewer, REVIEW)).status_code
        == 403
    )
    # Disabling the bank is effective for the next upload too.
    r = world.client.patch("/v1/moderation/banks/terror", headers=h(mod), json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert world.upload(creator, banned).json()["status"] == "published"


def test_restricted_in_one_jurisdiction_and_available_elsewhere(world: World) -> None:
    mod, creator = world.signup("US"), world.signup("CA")
    us_viewer, ca_viewer = world.signup("US"), world.signup("CA")
    world.make_moderator(mod)
    clip = make_video(world.tmp / "r.mp4", seconds=2, seed=21)
    _bank(world, mod, "us-only", action="restrict", ground="illegal")
    _import(world, mod, "us-only", clip)
    vid = world.upload(creator, clip).json()["id"]
    assert world.client.get(f"/v1/videos/{vid}", headers=h(us_viewer)).status_code == 451
    assert world.client.get(f"/v1/videos/{vid}", headers=h(ca_viewer)).status_code == 200
    (decision,) = world.client.get(f"/v1/videos/{vid}/decisions", headers=h(mod, REVIEW)).json()
    assert decision["decision_visibility"] == "restricted"
    assert decision["territorial_scope"] == ["US"]


def test_held_upload_is_reviewed_appealed_and_reversed_at_once(world: World) -> None:
    mod, creator, viewer = world.signup("US"), world.signup("CA"), world.signup("GB")
    world.make_moderator(mod)
    clip = make_video(world.tmp / "h.mp4", seconds=2, seed=31)
    _bank(world, mod, "suspect", action="hold")
    _import(world, mod, "suspect", clip)
    vid = world.upload(creator, clip).json()["id"]
    assert world.client.get(f"/v1/videos/{vid}", headers=h(viewer)).status_code == 404
    assert vid not in world.feed_ids(viewer)
    assert world.client.get("/v1/moderation/queue", headers=h(creator, REVIEW)).status_code == 403
    (item,) = world.client.get("/v1/moderation/queue", headers=h(mod, REVIEW)).json()
    assert item["target_id"] == vid and item["origin"] == "automated"
    # The reviewer confirms a rejection; the creator appeals; a second review reverses it.
    r = world.client.post(
        f"/v1/moderation/queue/{item['id']}/decision",
        headers=h(mod),
        json={
            "visibility": "rejected",
            "facts": "matches known material",
            "ground": "terms",
            "rule": "CG 4.2",
        },
    )
    assert r.status_code == 200, r.text
    rejected = r.json()
    assert rejected["automated_decision"] is False and rejected["supersedes"]
    assert world.client.get("/v1/moderation/queue", headers=h(mod, REVIEW)).json() == []
    r = world.client.post(
        f"/v1/moderation/decisions/{rejected['id']}/appeal",
        headers=h(creator),
        json={"statement": "this is my own footage"},
    )
    assert r.status_code == 201, r.text
    other = world.client.post(
        f"/v1/moderation/decisions/{rejected['id']}/appeal",
        headers=h(viewer),
        json={"statement": "x"},
    )
    assert other.status_code == 404
    (appeal,) = world.client.get("/v1/moderation/queue", headers=h(mod, REVIEW)).json()
    assert appeal["origin"] == "appeal"
    r = world.client.post(
        f"/v1/moderation/queue/{appeal['id']}/decision",
        headers=h(mod),
        json={"visibility": "published", "facts": "appeal upheld: original footage"},
    )
    assert r.status_code == 200 and r.json()["source"] == "appeal"
    assert world.client.get(f"/v1/videos/{vid}", headers=h(viewer)).status_code == 200
    assert vid in world.feed_ids(viewer)
    # A user report puts published content back in the queue.
    r = world.client.post(
        "/v1/reports",
        headers=h(viewer),
        json={"target_kind": "video", "target_id": vid, "reason": "spam"},
    )
    assert r.status_code == 201
    again = world.client.post(
        "/v1/reports",
        headers=h(viewer),
        json={"target_kind": "video", "target_id": vid, "reason": "spam"},
    )
    assert again.status_code == 409
    history = world.client.get(f"/v1/videos/{vid}/decisions", headers=h(creator)).json()
    assert [d["decision_visibility"] for d in history] == ["held", "rejected", "published"]


def test_bad_input_changes_nothing(world: World) -> None:
    mod, creator = world.signup("US"), world.signup("CA")
    world.make_moderator(mod)
    _bank(world, mod, "b")
    clip = make_video(world.tmp / "ok.mp4", seconds=2, seed=41)
    cut = world.tmp / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    before = world.fingerprint()
    bad_lists = ["f" * 64 + "\nnot-a-hash\n", "g" * 64, "", "f" * 64 + "\x1b[31m\n"]
    for text in bad_lists:
        r = world.client.post("/v1/moderation/banks/b/hashes", headers=h(mod), json={"text": text})
        assert r.status_code == 422, text
        assert r.json()["detail"]
    assert world.upload(creator, cut).status_code == 422
    r = world.upload(creator, clip, caption="hello\x07world")
    assert r.status_code == 422 and "U+0007" in r.json()["detail"]
    r = world.upload(creator, clip, caption="evil \u202e txt")
    assert r.status_code == 422
    r = world.client.post(
        "/v1/reports",
        headers=h(creator),
        json={"target_kind": "video", "target_id": "nope", "reason": "x"},
    )
    assert r.status_code == 404
    assert world.fingerprint().diff(before) == []
    # Any script is fine in a caption.
    assert world.upload(creator, clip, caption="冲浪 🌊 مرحبا").status_code == 201


def _log(w: World) -> list[dict[str, Any]]:
    with w.cell.store.connect() as conn:
        rows = conn.execute(sa.select(LOG).order_by(LOG.c.domicile, LOG.c.seq)).all()
    return [dict(r._mapping) for r in rows]


def test_moderators_are_staff_and_every_queue_read_is_logged(world: World) -> None:
    mod, creator, other, reporter = (world.signup(c) for c in ("US", "CA", "GB", "CA"))
    # The old placeholder grants nothing any more: only a role in the cell's staff_roles does.
    (world.cell.root / RULES_FILE).write_text(f'moderators = ["{mod["id"]}"]\n')
    r = world.client.get("/v1/moderation/queue", headers=h(mod, REVIEW))
    assert r.status_code == 403 and "moderator role" in r.json()["detail"]
    assert world.client.get("/v1/moderation/banks", headers=h(mod)).status_code == 403
    world.make_moderator(mod)
    assert world.client.get("/v1/moderation/banks", headers=h(mod)).status_code == 200
    clips = [make_video(world.tmp / f"q{n}.mp4", seconds=2, seed=50 + n) for n in range(3)]
    vids = [
        world.upload(creator, clips[0]).json()["id"],
        world.upload(creator, clips[1]).json()["id"],
    ]
    vids.append(world.upload(other, clips[2]).json()["id"])
    for vid in vids:
        body = {"target_kind": "video", "target_id": vid, "reason": "looks like spam"}
        assert world.client.post("/v1/reports", headers=h(reporter), json=body).status_code == 201
    # No purpose (or a blank one): refused after the role check, and nothing is logged.
    for headers in (h(mod), h(mod, "   ")):
        r = world.client.get("/v1/moderation/queue", headers=headers)
        assert r.status_code == 422 and "stated purpose" in r.json()["detail"]
    r = world.client.get(f"/v1/videos/{vids[0]}/decisions", headers=h(mod))
    assert r.status_code == 422
    assert _log(world) == []
    items = world.client.get("/v1/moderation/queue", headers=h(mod, REVIEW)).json()
    assert len(items) == 3
    # One entry per subject shown (the two creators), in each subject's own chain.
    log = _log(world)
    assert sorted((e["subject_id"], e["domicile"], e["seq"]) for e in log) == sorted(
        [(creator["id"], "CA", 1), (other["id"], "GB", 1)]
    )
    mine = next(e for e in log if e["subject_id"] == creator["id"])
    assert mine["action"] == "2 review-queue item(s) about your content"
    assert (mine["staff_id"], mine["role"], mine["purpose"]) == (mod["id"], "moderator", REVIEW)
    # A moderator reading statements of reasons about someone's video is logged too; the
    # creator reading their own is not a staff read.
    r = world.client.get(f"/v1/videos/{vids[0]}/decisions", headers=h(mod, REVIEW))
    assert r.status_code == 200 and len(r.json()) == 1
    assert (
        world.client.get(f"/v1/videos/{vids[0]}/decisions", headers=h(creator)).status_code == 200
    )
    assert len(_log(world)) == 3
    assert verify_chain(world.cell.store) == []
    # Revoked: the next request is refused.
    assert staff.revoke(world.cell, mod["id"], "moderator")
    assert world.client.get("/v1/moderation/queue", headers=h(mod, REVIEW)).status_code == 403
