"""Work `carveout serve` does beside requests: finish interrupted erasures when it starts, then
every hour enforce retention, retrain recommenders that are due (CARVEOUT_RETRAIN_HOURS) and
bring the content exchange's guest copies up to date. Failures are logged, never fatal to
serving."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from carveout import exchange, privacy
from carveout.cells import Deployment
from carveout.core import now_ms
from carveout.privacy.retention import enforce
from carveout.recommend import train_cell, warm
from carveout.recommend.schedule import period_ms, retrain_due

log = logging.getLogger(__name__)
EVERY_S = 3600.0


def start_up(deployment: Deployment) -> None:
    for cell in deployment.cells():
        try:
            for receipt in privacy.resume_erasures(cell):
                log.info("privacy: finished interrupted erasure %s", receipt.request_id)
        except Exception:
            log.exception("privacy: resuming erasures of cell %s failed", cell.name)


def tick(deployment: Deployment, now: int, retrain_period_ms: int) -> list[str]:
    """One round of periodic work; returns the cells whose recommender was retrained."""
    retrained = []
    deployment.refresh_policy()  # a carve may have added a cell
    for cell in deployment.cells():
        try:
            report = enforce(cell, now)
            log.info("retention: %s deleted %s", cell.name, report.deleted)
        except Exception:
            log.exception("retention: cell %s failed", cell.name)
        try:
            if retrain_due(cell, now, retrain_period_ms):
                manifest = train_cell(cell)
                log.info("recommend: %s retrained, model %s", cell.name, manifest.version)
                retrained.append(cell.name)
        except Exception:
            log.exception("recommend: retraining cell %s failed", cell.name)
    # After retention (an expired or erased creator's videos leave the origin first, so the
    # sync withdraws their copies in the same round); sync_all logs and skips a failing pair.
    exchange.sync_all(deployment)
    return retrained


def _loop(deployment: Deployment, stop: threading.Event, period: int) -> None:
    start_up(deployment)
    while not stop.is_set():
        tick(deployment, now_ms(), period)
        stop.wait(EVERY_S)


def _warm_models(deployment: Deployment) -> None:
    for cell in deployment.cells():
        try:
            served = warm(cell, deployment.policy)
        except Exception:  # a refused or broken version: requests fall back, as they would
            log.exception("recommend: warming %s's model failed", cell.name)
            continue
        log.info("recommend: %s %s", cell.name, "model loaded" if served else "no model yet")


def lifespan(deployment: Deployment) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def run(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        period = period_ms()  # a bad CARVEOUT_RETRAIN_HOURS stops start-up with its reason
        # Before the first request, not on it: every cell's model, catalogue and serving index.
        await anyio.to_thread.run_sync(_warm_models, deployment)
        worker = threading.Thread(
            target=_loop, args=(deployment, stop, period), name="housekeeping", daemon=True
        )
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=5)

    return run
