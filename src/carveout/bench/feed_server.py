"""The app the feed bench serves over HTTP: `carveout serve`'s app, unchanged, in a process that
also notes each garbage collection of 5 ms or more (wall time, generation, milliseconds) in the
file named by CARVEOUT_BENCH_GC_LOG, so that a stall in the open loop can be told from a
collection (or not). The callback runs only around collections; requests are not touched."""

from __future__ import annotations

import gc
import json
import os
import time
from typing import Any

from carveout.api.server import app
from carveout.bench.feed_http import GC_LOG_ENV

NOTED_MS = 5.0

_log_path = os.environ.get(GC_LOG_ENV)
_began = [0.0]


def _note(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _began[0] = time.perf_counter()
        return
    took_ms = (time.perf_counter() - _began[0]) * 1000
    if _log_path and took_ms >= NOTED_MS:
        with open(_log_path, "a", encoding="utf-8") as fh:  # noqa: PTH123  # rare, tiny
            fh.write(json.dumps([time.time(), info["generation"], round(took_ms, 2)]) + "\n")


gc.callbacks.append(_note)

__all__ = ["app"]
