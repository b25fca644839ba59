"""API fixtures: a deployment of cells on each backend, a test client, signed-up users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apiclient import Api
from fastapi.testclient import TestClient

from carveout.api import create_app
from carveout.cells import Deployment, init_data_dir
from carveout.cells.policy import one_cell_policy

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
            policy = one_cell_policy(storage(), content_exchange=False)
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
