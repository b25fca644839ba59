"""Exchange fixtures: a three-cell deployment on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_env import Env, make_env


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """`na-anz` and `global` exchange content; `closed` does not. On PostgreSQL both exchanging
    cells have their own database."""
    if request.param == "sqlite":
        made = make_env(tmp_path)
    else:
        server = request.getfixturevalue("pg_server")
        made = make_env(tmp_path, na=server.fresh_url(), glob=server.fresh_url())
    yield made
    made.client.close()
    made.deployment.close()


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Iterator[Env]:
    made = make_env(tmp_path)
    yield made
    made.client.close()
    made.deployment.close()
