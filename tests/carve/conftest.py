"""Carve fixtures: the real KuaiRec data loaded once per session, copied for each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from carveout.cells import Deployment, init_data_dir
from carveout.core.settings import datasets_dir
from carveout.datasets import load_kuairec


@pytest.fixture(scope="session")
def kuairec_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kuairec") / "data"
    deployment = init_data_dir(root)
    load_kuairec(deployment, datasets_dir(), seed=7)
    deployment.close()
    return root


@pytest.fixture
def loaded(kuairec_template: Path, tmp_path: Path) -> Iterator[Deployment]:
    """A one-cell (`global`) deployment holding the real KuaiRec load, private to the test."""
    root = tmp_path / "data"
    shutil.copytree(kuairec_template, root)
    deployment = Deployment.open(root)
    yield deployment
    deployment.close()
