"""The API test client the tests/api modules share: sign-up, upload, store fingerprints.

A module of its own (not conftest.py) because `from conftest import ...` picks whichever
conftest was imported last when several test folders are collected in one run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from carveout.cells import Deployment
from carveout.storage import Fingerprint, fingerprint
from media import make_video


@dataclass
class Api:
    client: TestClient
    deployment: Deployment
    tmp: Path
    _n: int = 0

    def signup(self, country: str = "CA", **fields: Any) -> dict[str, str]:
        """Sign up a fresh user; return auth headers (with the user's id under 'X-User')."""
        self._n += 1
        body = {
            "handle": f"user{self._n}",
            "display_name": f"User {self._n}",
            "email": f"user{self._n}@example.com",
            "password": "correct horse battery",
            "birth_year": 1990,
            "country": country,
            **fields,
        }
        r = self.client.post("/v1/users", json=body)
        assert r.status_code == 201, r.text
        data = r.json()
        return {"Authorization": f"Bearer {data['token']}", "X-User": data["user"]["id"]}

    def video_file(self, seed: int = 0, **kw: Any) -> Path:
        return make_video(self.tmp / f"clip-{seed}-{self._n}.mp4", seed=seed, **kw)

    def upload(self, headers: dict[str, str], seed: int = 0, **form: str) -> dict[str, Any]:
        path = self.video_file(seed)
        with path.open("rb") as fh:
            r = self.client.post(
                "/v1/videos",
                headers=auth(headers),
                files={"file": ("clip.mp4", fh, "video/mp4")},
                data={"caption": "a clip", "hashtags": "test,clip", "category": "tests", **form},
            )
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    def fingerprints(self) -> dict[str, Fingerprint]:
        return {c.name: fingerprint(c.store, c.blobs) for c in self.deployment.cells()}

    def assert_unchanged(self, before: dict[str, Fingerprint]) -> None:
        after = self.fingerprints()
        for name, fp in before.items():
            assert fp.diff(after[name]) == [], f"cell {name} changed"


def auth(headers: dict[str, str]) -> dict[str, str]:
    return {"Authorization": headers["Authorization"]}
