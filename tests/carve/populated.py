"""A small deployment for the carve's backend tests: six users (CA, US, GB, DE, CA, GB) made
through the API, a video each, watch events, a like and a comment each on their own side of the
border, and no follows.

A module of its own (not conftest.py), as carving.py explains."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def _video(path: Path, seed: int) -> Path:
    from media import make_video

    return make_video(path / f"v{seed}.mp4", seed=seed)


def populate(client: TestClient, tmp: Path) -> dict[str, dict[str, str]]:
    users: dict[str, dict[str, str]] = {}
    for i, country in enumerate(["CA", "US", "GB", "DE", "CA", "GB"]):
        body = {
            "handle": f"user{i}",
            "display_name": f"U{i}",
            "email": f"u{i}@example.com",
            "password": "long enough pw",
            "country": country,
        }
        r = client.post("/v1/users", json=body)
        assert r.status_code == 201, r.text
        users[f"u{i}"] = {
            "Authorization": f"Bearer {r.json()['token']}",
            "id": r.json()["user"]["id"],
            "country": country,
        }
    vids = []
    for i, (name, who) in enumerate(users.items()):
        with _video(tmp, i).open("rb") as fh:
            r = client.post(
                "/v1/videos",
                headers={"Authorization": who["Authorization"]},
                files={"file": ("v.mp4", fh, "video/mp4")},
                data={"caption": name},
            )
        assert r.status_code == 201, r.text
        vids.append((who["country"], r.json()["id"]))
    for who in users.values():
        h = {"Authorization": who["Authorization"]}
        own_side = [v for c, v in vids if (c in ("CA", "US")) == (who["country"] in ("CA", "US"))]
        batch = [{"video_id": v, "kind": "watch", "watched_ms": 700} for v in own_side]
        assert client.post("/v1/events", headers=h, json={"events": batch}).status_code == 202
        assert client.put(f"/v1/videos/{own_side[0]}/like", headers=h).status_code == 200
        assert (
            client.post(
                f"/v1/videos/{own_side[-1]}/comments", headers=h, json={"body": "nice"}
            ).status_code
            == 201
        )
    return users
