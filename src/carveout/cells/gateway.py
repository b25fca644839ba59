"""The gateway: routes each request to the cell serving the caller's jurisdiction."""

from __future__ import annotations

import logging
import threading
import time

import anyio

from carveout.cells.fence import FenceBoard
from carveout.cells.registry import Cell, Deployment
from carveout.core import CarveoutError

log = logging.getLogger(__name__)

# Longest a write waits at a fence; a cutover normally lifts it in well under a second.
HOLD_TIMEOUT_S = 10.0
# How often a held write looks at the fence again: a bound on the delay it adds after release.
HOLD_POLL_S = 0.002


class WritesPaused(CarveoutError):
    """A fence outlived HOLD_TIMEOUT_S (e.g. a carve died mid-cutover): retry later."""

    status = 503


class Gateway:
    """Jurisdiction -> cell routing. Work that must see every cell (is a handle taken anywhere?
    which cell holds this login?) asks each cell through its own store, never one cell for
    another's data."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        # Handles and emails are unique across cells; signups are serialised so two cells
        # cannot both accept the same handle in the embedded mode.
        self.signup_lock = threading.Lock()
        self.fences = FenceBoard(deployment.data_dir)
        self._preparing: set[str] = set()
        self._preparing_lock = threading.Lock()

    def route(self, jurisdiction: str) -> Cell:
        self.deployment.refresh_policy()
        return self.deployment.cell_for(jurisdiction)

    def route_write(self, jurisdiction: str) -> Cell:
        """Like route(), but a write of a fenced jurisdiction is held (not failed) until the
        cutover releases the fence, and then goes wherever the policy now sends it."""
        if not self.fences.wait_until_clear(jurisdiction, HOLD_TIMEOUT_S):
            raise WritesPaused(
                f"writes for {jurisdiction} are paused by a carve cutover; retry shortly"
            )
        return self.route(jurisdiction)

    async def hold_write(self, jurisdiction: str) -> None:
        """Wait on the event loop while `jurisdiction` is fenced. A write held in a worker
        thread would keep that thread: a cutover holding more writes than the server has
        threads would then stall every other jurisdiction's requests too."""
        if not self.fences.blocks(jurisdiction):
            return
        self._prepare_target()
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while self.fences.blocks(jurisdiction):
            if time.monotonic() >= deadline:
                raise WritesPaused(
                    f"writes for {jurisdiction} are paused by a carve cutover; retry shortly"
                )
            await anyio.sleep(HOLD_POLL_S)

    def _prepare_target(self) -> None:
        """Open the fence's target cell on a thread of its own, once per target, while writes
        wait: released writes then find its store open and connected (on PostgreSQL opening
        it, migrations check and first connections included, cost the first ones ~100 ms)."""
        fence = self.fences.current()
        if fence is None or fence.target is None:
            return
        target = fence.target
        with self._preparing_lock:
            if target.name in self._preparing:
                return
            self._preparing.add(target.name)

        def prepare() -> None:
            try:
                self.deployment.prepare(target)
            except Exception:  # an optimisation only: the first released write opens it
                log.warning("could not open %s ahead of the switch", target.name, exc_info=True)

        threading.Thread(target=prepare, name=f"prepare-{target.name}", daemon=True).start()

    def cells(self) -> list[Cell]:
        return self.deployment.cells()
