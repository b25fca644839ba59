"""The demo's traffic: writers on both sides of the new border, each keeping a ledger."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Writer:
    name: str
    country: str
    token: str
    user_id: str
    videos: list[str]
    acked: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


class Traffic:
    """Each writer comments (body `<name>-<n>`, so every acknowledged write can be found
    exactly once afterwards) and posts watch events, in a loop, until stopped."""

    def __init__(self, base_url: str, writers: list[Writer]) -> None:
        self.base_url = base_url
        self.writers = writers
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(w,)) for w in writers]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _loop(self, w: Writer) -> None:
        headers = {"Authorization": f"Bearer {w.token}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                video = w.videos[i % len(w.videos)]
                began = time.monotonic()
                try:
                    r = client.post(
                        f"/v1/videos/{video}/comments", json={"body": f"{w.name}-{w.acked}"}
                    )
                    ok = r.status_code == 201
                    if ok:
                        w.acked += 1
                    else:
                        w.errors.append(f"{r.status_code} {r.text[:200]}")
                    events = {"events": [{"video_id": video, "kind": "watch", "watched_ms": 900}]}
                    r = client.post("/v1/events", json=events)
                    if r.status_code != 202:
                        w.errors.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    w.errors.append(repr(exc))
                w.latencies.append(time.monotonic() - began)
                i += 1
                time.sleep(0.01)
