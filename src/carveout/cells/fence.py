"""Write fences: during a carve's cutover, writes of the moving jurisdictions wait at the gateway.

The fence is a small JSON file in the data directory, so that every process serving the
deployment sees it: a check is one stat() while nothing changes."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from carveout.cells.policy import CellSpec

FENCE_FILE = "fence.json"
# A cutover about to start: same content as a fence, but nothing waits for it. A server that
# sees it opens and warms the target ahead (see Gateway), so the fence's release finds it ready.
ANNOUNCE_FILE = "cutover-next.json"


@dataclass(frozen=True)
class Fence:
    carve: str
    jurisdictions: frozenset[str]
    raised_at: int  # Unix ms
    # Who raised it, so status and alerts can tell a dead carve's fence from a slow cutover.
    owner: str = ""
    # The cell the held writes go to once the fence is down: a server holding writes opens it
    # meanwhile, so the first released write does not pay for opening it.
    target: CellSpec | None = None


def _spec(raw: dict[str, Any] | None) -> CellSpec | None:
    if raw is None:
        return None
    return CellSpec(
        name=str(raw["name"]),
        jurisdictions=tuple(raw["jurisdictions"]),
        serves_rest=bool(raw["serves_rest"]),
        primary_site=str(raw["primary_site"]),
        backup_site=raw["backup_site"],
        content_exchange=bool(raw["content_exchange"]),
        storage=str(raw["storage"]),
    )


class _FenceFile:
    """One JSON file holding a Fence, read again only when its mtime changes (a stat() a call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, Fence | None] = (-1, None)

    def read(self) -> Fence | None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        with self._lock:
            if stamp == self._seen[0]:
                return self._seen[1]
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            fence = Fence(
                raw["carve"],
                frozenset(raw["jurisdictions"]),
                int(raw["raised_at"]),
                str(raw.get("owner", "")),
                _spec(raw.get("target")),
            )
        except FileNotFoundError:
            return None
        with self._lock:
            self._seen = (stamp, fence)
        return fence

    def write(self, fence: Fence) -> None:
        body = json.dumps(
            {
                "carve": fence.carve,
                "jurisdictions": sorted(fence.jurisdictions),
                "raised_at": fence.raised_at,
                "owner": fence.owner or f"{socket.gethostname()}:{os.getpid()}",
                "target": asdict(fence.target) if fence.target is not None else None,
            }
        )
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".fence-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class FenceBoard:
    def __init__(self, data_dir: Path) -> None:
        self._fence = _FenceFile(data_dir / FENCE_FILE)
        self._next = _FenceFile(data_dir / ANNOUNCE_FILE)
        self.path = self._fence.path

    def current(self) -> Fence | None:
        return self._fence.read()

    def announced(self) -> Fence | None:
        """The cutover announced next (its `raised_at`: when it was announced), if any."""
        return self._next.read()

    def announce(self, fence: Fence) -> None:
        self._next.write(fence)

    def blocks(self, jurisdiction: str) -> bool:
        fence = self.current()
        return fence is not None and jurisdiction in fence.jurisdictions

    def wait_until_clear(self, jurisdiction: str, timeout_s: float) -> bool:
        """Hold the caller while `jurisdiction` is fenced; False if still fenced at the timeout."""
        deadline = time.monotonic() + timeout_s
        delay = 0.001
        while self.blocks(jurisdiction):
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        return True

    def raise_fence(self, fence: Fence) -> None:
        self._fence.write(fence)

    def release(self) -> None:
        """The fence down, and the announcement of it gone with it."""
        self._fence.remove()
        self._next.remove()
