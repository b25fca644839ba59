"""The app the feed bench serves over HTTP: `carveout serve`'s app, unchanged, in a process that
also notes, in the file named by CARVEOUT_BENCH_SERVER_NOTES, what could explain a stall of the
open loop (stall_notes.py):
- each garbage collection of 5 ms or more (generation, milliseconds);
- each time a watcher thread, sleeping 5 ms at a time, woke 20 ms or more late: the process was
  descheduled, or one C call held the interpreter's lock that long;
- each request that took 50 ms or more from the server's first sight of it to its last byte.
Requests themselves are not changed; the watcher costs ~200 short wake-ups a second."""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

from carveout.api.server import app as served
from carveout.bench.stall_notes import NOTES_ENV, NoteFile, watch_lag

GC_NOTED_MS = 5.0
SLOW_REQUEST_MS = 50.0

_notes = NoteFile(os.environ.get(NOTES_ENV))
_gc_began = [0.0]


def _note_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_began[0] = time.perf_counter()
        return
    took_ms = (time.perf_counter() - _gc_began[0]) * 1000
    if took_ms >= GC_NOTED_MS:
        _notes.write("gc", round(took_ms, 2), info["generation"])


async def app(scope: Any, receive: Any, send: Any) -> None:
    """`served`, timing each HTTP request from its arrival to its last body chunk."""
    if scope["type"] != "http":
        await served(scope, receive, send)
        return
    began = time.perf_counter()
    try:
        await served(scope, receive, send)
    finally:
        took_ms = (time.perf_counter() - began) * 1000
        if took_ms >= SLOW_REQUEST_MS:
            _notes.write("slow", round(took_ms, 2), scope.get("path", ""))


if _notes.enabled:
    gc.callbacks.append(_note_gc)
    threading.Thread(target=watch_lag, args=(_notes,), name="lag-watch", daemon=True).start()
