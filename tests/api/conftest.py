"""API fixtures: a deployment of cells on each backend, a test client, signed-up users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carveout.api import create_app
from carveout.cells import Deployment, init_data_dir
from carveout.storage import Fingerprint, fingerprint
from media import make_video

ONE_CELL = """
version = 1
[sites.us]
[sites.sg]
[cells.global]
jurisdictions = ["*"]
primary_site = "us"
backup_site = "sg"
storage = "{global_storage}"
"""

TWO_CELLS = """
version = 1
[sites.us]
[sites.sg]
[sites.eu]
[cells.na-anz]
jurisdictions = ["US", "CA", "AU", "NZ"]
primary_site = "us"
backup_site = "sg"
storage = "{na_storage}"
[cells.global]
jurisdictions = ["*"]
primary_site = "eu"
backup_site = "sg"
storage = "{global_storage}"
"""


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


def _deploy(tmp: Path, policy: str) -> Deployment:
    return init_data_dir(tmp / "data", policy)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_api(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> Iterator[Callable[..., Api]]:
    """`make_api(two_cells=False, max_body_bytes=...)` on the parametrised backend."""
    made: list[Api] = []

    def make(*, two_cells: bool = False, max_body_bytes: int = 64 * 1024 * 1024) -> Api:
        def storage() -> str:
            return (
                "sqlite"
                if backend == "sqlite"
                else str(request.getfixturevalue("pg_server").fresh_url())
            )

        if two_cells:
            policy = TWO_CELLS.format(na_storage=storage(), global_storage=storage())
        else:
            policy = ONE_CELL.format(global_storage=storage())
        deployment = _deploy(tmp_path / f"d{len(made)}", policy)
        client = TestClient(create_app(deployment, max_body_bytes=max_body_bytes))
        api = Api(client=client, deployment=deployment, tmp=tmp_path)
        made.append(api)
        return api

    yield make
    for api in made:
        api.client.close()
        api.deployment.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
