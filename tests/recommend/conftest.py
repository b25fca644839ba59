"""Recommend fixtures: a two-cell deployment with users and videos written straight to a cell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from world import POLICY, World

from carveout.cells import init_data_dir
from carveout.recommend import service


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    deployment = init_data_dir(tmp_path / "data", POLICY)
    w = World(deployment, deployment.cell("na"))
    yield w
    service.forget(w.cell)
    deployment.close()


@pytest.fixture
def trained_world(world: World) -> World:
    """Two creators, 12 videos in two categories, 25 viewers with some history each."""
    creators = [world.user("US"), world.user("CA")]
    for i in range(12):
        world.video(creators[i % 2], "pets" if i < 6 else "cars", (f"t{i % 3}",))
    for u in range(25):
        viewer = world.user("CA" if u % 2 else "US")
        for k in range(6):
            video = world.videos[(u + k) % 12]
            world.watch(viewer, video, 0.3 + ((u * 7 + k * 3) % 10) / 5)
    return world
