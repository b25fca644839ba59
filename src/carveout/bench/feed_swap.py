"""The feed bench's model swap: feed latency while a new model version is loaded (SYNTHETIC).

Open loop in this process at a stated rate: request i is due at start + i/rate and its latency
runs from that due time, so requests held up by a load count, every one of them. Three windows
of the same length on the same cell and model: no swap; a new version loaded in the background
and swapped in (today's path, started as a retrain in the process starts it); and the old
behaviour, the version loaded on the first request due, under the cell's lock, with the serving
index rebuilt on the request that follows. The new versions are the served one saved again
under new version ids, so each load reads, checks and indexes as much as a retrain's would."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from carveout.accounts import User
from carveout.cells import Cell
from carveout.core import new_id
from carveout.recommend import artefact, for_you, service
from carveout.recommend.cell_recommender import CellRecommender

FEED = 20
TAIL_S = 3.0  # measured past the swap: the requests that rebuild user states after it


@dataclass
class Window:
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    seconds: float
    load_1min: float


@dataclass
class SwapResult:
    rate: float
    background_swap_s: float  # from the trigger to the new version served
    on_request_load_s: float  # the old behaviour's first request: load + serve
    steady: Window
    background: Window
    on_request: Window

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _window(latencies: list[float], seconds: float, load: float) -> Window:
    arr = np.array(latencies, dtype=np.float64)
    return Window(
        int(arr.size),
        float(np.percentile(arr, 50)),
        float(np.percentile(arr, 99)),
        float(arr.max()),
        seconds,
        load,
    )


def _open_loop(
    cell: Cell,
    users: list[User],
    rate: float,
    rng: random.Random,
    done: Callable[[float], bool],
    first: Callable[[], None] | None = None,
) -> tuple[list[float], float]:
    """Feeds due every 1/rate s until `done(elapsed)`; latencies from due times (ms) and the
    first request's own time (s: the old behaviour's load)."""
    out: list[float] = []
    first_s = 0.0
    start = time.perf_counter()
    i = 0
    while True:
        due = start + i / rate
        if i and done(due - start):
            break
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        began = time.perf_counter()
        if i == 0 and first is not None:
            first()
        for_you(cell, rng.choice(users), None, FEED)
        if i == 0:
            first_s = time.perf_counter() - began
        out.append((time.perf_counter() - due) * 1000)
        i += 1
    return out, first_s


def _save_again(cell: Cell, rec: CellRecommender) -> str:
    """The served version, saved again under a new id (through the artefact code)."""
    assert rec.ranker is not None and rec.manifest is not None and rec.model is not None
    manifest = replace(rec.manifest, version=new_id(), files={}, artefact_sha256="")
    return artefact.save(cell, rec.ranker, manifest, rec.model).name


def measure_swap(cell: Cell, users: list[User], rate: float, seed: int) -> SwapResult:
    rec = service.recommender(cell)
    rng = random.Random(seed)  # noqa: S311  # synthetic traffic, not security

    # 1. In the background, started as a retrain in this process starts it.
    version = _save_again(cell, rec)
    swapped_at: list[float] = []

    def background_done(elapsed: float) -> bool:
        if not swapped_at and rec.manifest is not None and rec.manifest.version == version:
            swapped_at.append(elapsed)
        return bool(swapped_at) and elapsed >= swapped_at[0] + TAIL_S

    load = os.getloadavg()[0]
    got, _ = _open_loop(
        cell, users, rate, rng, background_done, first=lambda: service.model_saved(cell)
    )
    assert rec.wait_for_loader()
    length = swapped_at[0] + TAIL_S
    background = _window(got, length, load)

    # 2. The old behaviour: the first request due loads the version under the lock.
    version = _save_again(cell, rec)

    def load_on_request() -> None:
        with rec.lock:
            rec.load_now()

    load = os.getloadavg()[0]
    got, first_s = _open_loop(cell, users, rate, rng, lambda e: e >= length, first=load_on_request)
    assert rec.manifest is not None and rec.manifest.version == version
    on_request = _window(got, length, load)

    # 3. No swap, the same length.
    load = os.getloadavg()[0]
    got, _ = _open_loop(cell, users, rate, rng, lambda e: e >= length)
    steady = _window(got, length, load)
    return SwapResult(rate, swapped_at[0], first_s, steady, background, on_request)
