"""Backup fixtures: a filled one-cell deployment per test (helpers in backup_env.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from backup_env import Env, MakeEnv, add_blob, add_users, policy_text

from carveout.bench.backup_s3server import CephS3
from carveout.cells import init_data_dir
from carveout.storage import PgCluster


@pytest.fixture(scope="session")
def ceph_s3() -> Iterator[CephS3]:
    """One private Ceph radosgw (a real S3 server) per session (with xdist: per worker)."""
    with CephS3() as server:
        yield server


@pytest.fixture
def make_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeEnv]:
    """`make_env(backend, users=5, blobs=2, **policy)`: a filled one-cell deployment."""
    made: list[tuple[Env, PgCluster | None, str]] = []

    def make(backend: str = "sqlite", users: int = 5, blobs: int = 2, **policy: str) -> Env:
        server: PgCluster | None = None
        storage = "sqlite"
        if backend == "postgresql":
            server = request.getfixturevalue("pg_server")
            storage = server.fresh_url()
        data_dir = tmp_path / f"data{len(made)}"
        deployment = init_data_dir(data_dir, policy_text(storage, **policy))
        env = Env(deployment, data_dir, tmp_path)
        made.append((env, server, sa.make_url(storage).database or "" if server else ""))
        owners = add_users(env.cell, users)
        for i in range(blobs):
            add_blob(env.cell, owners[i % len(owners)], tmp_path)
        return env

    yield make
    for env, server, dbname in made:
        env.deployment.close()
        if server is not None:
            server.drop_database(dbname)


@pytest.fixture
def env(make_env: MakeEnv) -> Env:
    return make_env("sqlite")
