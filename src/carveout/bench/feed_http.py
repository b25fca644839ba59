"""The feed bench over HTTP: a real uvicorn server on the bench's cell, open-loop at a stated rate.

The server is `carveout serve`'s app in its own process over the same data directory, so it
loads the same model version and catalogue itself (its load time is reported). Each viewer gets
a session token; one request per viewer warms the server (model, catalogue, each user's state),
then GET /v1/feed?limit=20 is sent at `rate` per second whatever the answers' pace (openloop.py),
latency counted from each request's due time. The baseline, in the same run and at the same rate:
GET /v1/health of the same server (no database, one worker-thread hop): the HTTP stack's floor
on this machine at that moment."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from carveout.accounts import User, issue_session
from carveout.bench.feed_catalogue import Progress
from carveout.bench.loadgen import Call
from carveout.bench.openloop import run_open_loop
from carveout.bench.servers import UvicornServer, server_errors, tracebacks
from carveout.bench.stall_notes import NOTES_ENV, Note, read_notes
from carveout.cells import Cell
from carveout.core import CarveoutError
from carveout.core.settings import DATA_ENV

APP = "carveout.bench.feed_server:app"  # the serve app, with what could stall it noted
FEED_PATH = "/v1/feed?limit=20"
BASELINE_PATH = "/v1/health"
LOAD_TIMEOUT_S = 1800.0  # the first request loads a 1M-video model and catalogue
PREPARED = 512


class FeedHttpFailed(CarveoutError):
    """The HTTP part of the feed bench could not measure; the message holds the server's log."""


@dataclass(frozen=True)
class HttpFeedResult:
    rate: float
    seconds: float
    warmup_s: float
    users: int
    server_load_s: float  # first request: the server loads the model version and catalogue
    measured: dict[str, float | int | str]  # loadgen.Measurement.as_json()
    baseline: dict[str, float | int | str]  # the same for GET /v1/health
    slowest: list[tuple[float, float]]  # the feed's slowest: (due s after warm-up, latency ms)
    # Set beside `slowest` to tell a stall's cause (stall_notes.py), each as (s after the
    # warm-up, ms, detail), while the feed was measured: the server's collections ("gc",
    # detail: generation), late wake-ups ("lag") and slow requests ("slow", detail: path)...
    server_notes: dict[str, list[Note]] = field(default_factory=dict)
    # ...and the client's: requests sent late, (due s after the warm-up, ms late), and its own
    # collections, (s after the warm-up, ms, generation).
    client_late_sends: list[tuple[float, float]] = field(default_factory=list)
    client_gc: list[tuple[float, float, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def measure_http(
    data_dir: Path,
    cell: Cell,
    users: list[User],
    rate: float,
    seconds: float,
    seed: int,
    progress: Progress,
    warmup: float = 5.0,
) -> HttpFeedResult:
    """Serve `data_dir` with uvicorn and measure the feed at `rate` requests per second."""
    tokens = [issue_session(cell.store, u).token for u in users]
    rng = random.Random(seed)  # noqa: S311  # synthetic traffic, not security
    calls = [
        Call("GET", FEED_PATH, {"Authorization": f"Bearer {rng.choice(tokens)}"})
        for _ in range(PREPARED)
    ]
    notes = data_dir.parent / "server-notes.jsonl"
    env = {DATA_ENV: str(data_dir), NOTES_ENV: str(notes)}
    feed_began = 0.0
    with UvicornServer(APP, "/v1/health", env=env) as server:
        try:
            load_s = _warm_up(server.url, tokens, progress)
            runs = []
            for i, (what, sent) in enumerate(
                (("baseline", [Call("GET", BASELINE_PATH, {})]), ("feed", calls))
            ):
                progress("HTTP", i, 2, f"{what}: open loop at {rate:g} req/s")
                feed_began = time.time()
                runs.append(
                    run_open_loop(
                        server.url,
                        sent,
                        rate=rate,
                        seconds=seconds,
                        warmup=warmup,
                        server_pid=server.pid,
                    )
                )
            progress("HTTP", 2, 2, "")
            baseline, feed = runs
        except (FeedHttpFailed, httpx.HTTPError) as exc:
            raise FeedHttpFailed(f"{exc}\nserver log:\n{server_errors(server.log_text())}") from exc
        log = server.log_text()
    if tracebacks(log):
        raise FeedHttpFailed(f"the feed server raised:\n{server_errors(log)}")
    return HttpFeedResult(
        rate,
        seconds,
        warmup,
        len(tokens),
        load_s,
        feed.measurement.as_json(),
        baseline.measurement.as_json(),
        feed.slowest,
        read_notes(notes, feed_began + warmup, seconds),
        feed.late_sends,
        feed.client_gc,
    )


def _warm_up(url: str, tokens: list[str], progress: Progress) -> float:
    """One feed per viewer, in turn; returns the first one's time (the server's loading)."""
    load_s = 0.0
    progress("HTTP", 0, len(tokens), "server loads the model and catalogue")
    with httpx.Client(base_url=url, timeout=LOAD_TIMEOUT_S) as client:
        started = time.perf_counter()
        for i, token in enumerate(tokens):
            response = client.get(FEED_PATH, headers={"Authorization": f"Bearer {token}"})
            if response.status_code != 200:
                raise FeedHttpFailed(
                    f"GET {FEED_PATH}: HTTP {response.status_code} {response.text[:300]}"
                )
            if i == 0:
                load_s = time.perf_counter() - started
            progress("HTTP", i + 1, len(tokens), "warm-up: one request per viewer")
    return load_s
