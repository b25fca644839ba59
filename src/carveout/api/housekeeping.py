"""Work `carveout serve` does beside requests: finish interrupted erasures when it starts,
then enforce retention periodically. Failures are logged, never fatal to serving."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from carveout import privacy
from carveout.cells import Deployment
from carveout.privacy.retention import enforce

log = logging.getLogger(__name__)
RETENTION_EVERY_S = 3600.0


def _loop(deployment: Deployment, stop: threading.Event) -> None:
    for cell in deployment.cells():
        try:
            for receipt in privacy.resume_erasures(cell):
                log.info("privacy: finished interrupted erasure %s", receipt.request_id)
        except Exception:
            log.exception("privacy: resuming erasures of cell %s failed", cell.name)
    while not stop.is_set():
        for cell in deployment.cells():
            try:
                report = enforce(cell)
                log.info("retention: %s deleted %s", cell.name, report.deleted)
            except Exception:
                log.exception("retention: cell %s failed", cell.name)
        stop.wait(RETENTION_EVERY_S)


def lifespan(deployment: Deployment) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def run(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = threading.Thread(
            target=_loop, args=(deployment, stop), name="housekeeping", daemon=True
        )
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=5)

    return run
