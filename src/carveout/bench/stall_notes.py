"""Notes that tell where an open loop's stall came from: the server's collections, its late
wake-ups and its slow requests (written by feed_server.py in the server's process), and the
client's own collections (noted here, in the bench's process).

A stall shows in the open loop as neighbouring requests all late (openloop.py keeps the slowest
with their due times). Set beside these notes, with the same clock (wall time), it can be told
apart: a collection on either side, the server process not running (late wake-ups), the server
running but one request holding the rest up (a slow request), or none of these on the server's
side (the client, or the network stack between them)."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NOTES_ENV = "CARVEOUT_BENCH_SERVER_NOTES"
LAG_TICK_S = 0.005
LAG_NOTED_MS = 20.0
CLIENT_GC_NOTED_MS = 5.0

# (seconds after the measured window began, milliseconds, detail: a generation or a path)
Note = tuple[float, float, str]


class NoteFile:
    """Append-only JSON lines [kind, wall time, ms, detail]; a no-op without a path."""

    def __init__(self, path: str | None) -> None:
        self.enabled = bool(path)
        self._path = path
        self._lock = threading.Lock()  # the watcher thread and the event loop both write

    def write(self, kind: str, ms: float, detail: object = "") -> None:
        if not self._path:
            return
        line = json.dumps([kind, time.time(), ms, str(detail)]) + "\n"
        with self._lock, open(self._path, "a", encoding="utf-8") as fh:  # noqa: PTH123  # rare
            fh.write(line)


def watch_lag(notes: NoteFile) -> None:
    """Sleep LAG_TICK_S at a time forever; note each wake-up LAG_NOTED_MS or more late."""
    while True:
        asked = time.perf_counter()
        time.sleep(LAG_TICK_S)
        late_ms = (time.perf_counter() - asked - LAG_TICK_S) * 1000
        if late_ms >= LAG_NOTED_MS:
            notes.write("lag", round(late_ms, 2))


def read_notes(path: Path, began: float, seconds: float) -> dict[str, list[Note]]:
    """The notes of each kind that fall in [began, began + seconds + 1] (wall time)."""
    out: dict[str, list[Note]] = {"gc": [], "lag": [], "slow": []}
    if not path.is_file():
        return out
    for line in path.read_text("utf-8").splitlines():
        kind, at, ms, detail = json.loads(line)
        if began <= at <= began + seconds + 1:
            out.setdefault(kind, []).append((round(at - began, 3), float(ms), str(detail)))
    return out


@contextmanager
def client_collections() -> Iterator[list[tuple[float, float, int]]]:
    """Collect this process's collections of CLIENT_GC_NOTED_MS or more while the block runs,
    as (wall time, ms, generation)."""
    noted: list[tuple[float, float, int]] = []
    began = [0.0]

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        took_ms = (time.perf_counter() - began[0]) * 1000
        if took_ms >= CLIENT_GC_NOTED_MS:
            noted.append((time.time(), round(took_ms, 2), int(info["generation"])))

    gc.callbacks.append(note)
    try:
        yield noted
    finally:
        gc.callbacks.remove(note)
