"""The gateway: routes each request to the cell serving the caller's jurisdiction."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable

import anyio
import sqlalchemy as sa

from carveout.cells.fence import Fence, FenceBoard
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

    def __init__(
        self,
        deployment: Deployment,
        warm: Callable[[Cell, sa.Connection], object] | None = None,
    ) -> None:
        self.deployment = deployment
        # Run on each connection opened ahead for a carve's target (api.warmup.rehearse_writes).
        self.warm = warm
        # Handles and emails are unique across cells; signups are serialised so two cells
        # cannot both accept the same handle in the embedded mode.
        self.signup_lock = threading.Lock()
        self.fences = FenceBoard(deployment.data_dir)
        self._preparing: set[str] = set()
        self._preparing_lock = threading.Lock()
        # Per event loop: the event the writes held there wait on, set when the fence changes.
        self._fence_changes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
            weakref.WeakKeyDictionary()
        )
        self._watchers: set[asyncio.Task[None]] = set()

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
        self._prepare_target()
        if not self.fences.blocks(jurisdiction):
            return
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while self.fences.blocks(jurisdiction):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WritesPaused(
                    f"writes for {jurisdiction} are paused by a carve cutover; retry shortly"
                )
            with anyio.move_on_after(remaining):
                await self._fence_change().wait()

    def _fence_change(self) -> asyncio.Event:
        """One watcher per event loop looks at the fence every HOLD_POLL_S, however many
        writes are held: each polling on its own, 30 held writes woke the loop 15,000 times a
        second in the middle of the cutover, on the cores the cutover needs."""
        loop = asyncio.get_running_loop()
        event = self._fence_changes.get(loop)
        if event is None or event.is_set():
            event = self._fence_changes[loop] = asyncio.Event()
            watcher = loop.create_task(self._watch_fence(event, self.fences.current()))
            self._watchers.add(watcher)  # the loop keeps only a weak reference to a task
            watcher.add_done_callback(self._watchers.discard)
        return event

    async def _watch_fence(self, event: asyncio.Event, seen: Fence | None) -> None:
        try:
            while self.fences.current() == seen:
                await asyncio.sleep(HOLD_POLL_S)
        finally:
            event.set()

    def _prepare_target(self) -> None:
        """Open a carve's target cell on a thread of its own, once per target, as soon as its
        cutover is announced (else when its fence is up), and warm its pooled connections:
        released writes then find its store open, connected and its backends' caches loaded
        (on PostgreSQL opening it costs the first writes ~100 ms, a cold backend 2-10 ms a
        request kind). One or two stat() calls a write while no carve is on."""
        fence = self.fences.current() or self.fences.announced()
        if fence is None or fence.target is None:
            if self._preparing:
                self._forget_prepared()
            return
        target = fence.target
        with self._preparing_lock:
            if target.name in self._preparing:
                return
            self._preparing.add(target.name)

        def prepare() -> None:
            try:
                self.deployment.prepare(target, warm=self.warm)
            except Exception:  # an optimisation only: the first released write opens it
                log.warning("could not open %s ahead of the switch", target.name, exc_info=True)

        threading.Thread(target=prepare, name=f"prepare-{target.name}", daemon=True).start()

    def _forget_prepared(self) -> None:
        """No cutover any more: a target opened ahead that the policy does not name belonged
        to a carve that was aborted; its cell may be deleted and carved again, so let it go."""
        with self._preparing_lock:
            names, self._preparing = self._preparing, set()
        self.deployment.refresh_policy()
        for name in names - set(self.deployment.policy.names):
            self.deployment.discard_prepared(name)

    def cells(self) -> list[Cell]:
        return self.deployment.cells()
