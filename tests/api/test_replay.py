"""ReplayMoved: a write that met a carve's seal runs again once the fence is down."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from carveout.api.replay import MOVED_HEADER, ReplayMoved
from carveout.cells import Fence, FenceBoard


def _app(fences: FenceBoard, bodies: list[bytes]) -> ReplayMoved:
    async def write(request: Request) -> JSONResponse:
        bodies.append(await request.body())
        if len(bodies) == 1:  # the first attempt meets the seal
            return JSONResponse({"detail": "moved"}, 503, headers={MOVED_HEADER.decode(): "1"})
        return JSONResponse({"ok": True}, 202)

    return ReplayMoved(Starlette(routes=[Route("/w", write, methods=["POST"])]), fences)


def test_a_sealed_write_is_replayed_after_the_fence_lifts(tmp_path: Path) -> None:
    fences = FenceBoard(tmp_path)
    bodies: list[bytes] = []
    fences.raise_fence(Fence("na-anz", frozenset({"CA"}), 0))
    lifted = threading.Timer(0.3, fences.release)
    lifted.start()
    began = time.monotonic()
    r = TestClient(_app(fences, bodies)).post("/w", content=b'{"events": [1, 2, 3]}')
    assert r.status_code == 202 and r.json() == {"ok": True}
    assert bodies == [b'{"events": [1, 2, 3]}'] * 2  # the same body, replayed once
    assert time.monotonic() - began >= 0.25  # it waited for the fence
    lifted.join()


def test_reads_and_oversize_bodies_are_not_replayed(tmp_path: Path) -> None:
    fences = FenceBoard(tmp_path)
    bodies: list[bytes] = []
    big = b"x" * (2 << 20)
    r = TestClient(_app(fences, bodies)).post("/w", content=big)
    assert r.status_code == 503  # passed through: too big to buffer for a replay
    assert r.headers[MOVED_HEADER.decode()] == "1"
    assert len(bodies) == 1
