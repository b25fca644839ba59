"""`carveout bench api`: carveout's HTTP API against a trivial FastAPI app, per storage backend.

For each backend a fresh one-cell deployment is seeded with the real KuaiRec data and served by
uvicorn in its own process; the baseline app runs in another process with the same settings.
The same load generator drives both in the same run, so their ratio is the result: absolute
numbers on a shared two-core machine, where client and server compete, are noise.
"""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import httpx
import sqlalchemy as sa

from carveout.bench.loadgen import Call, Measurement, run_load
from carveout.bench.private_pg import private_cluster
from carveout.bench.servers import UvicornServer
from carveout.cells import Deployment, init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.core import CarveoutError
from carveout.core.settings import DATA_ENV
from carveout.datamap import TABLES
from carveout.datasets import load_kuairec
from carveout.storage.pgcluster import PgCluster

BACKENDS = ("sqlite", "postgresql")
DATA_LABEL = "real KuaiRec data (CC BY-SA 4.0)"
CARVEOUT_APP = "carveout.api.server:app"
BASELINE_APP = "carveout.bench.baseline:app"
FEED_LIMIT = 10
# Bench users come from several countries; the one cell serves them all.
COUNTRIES = ("US", "CA", "GB", "AU", "NZ", "SG", "DE", "BR", "IN", "JP")
PASSWORD = "bench password 1234"  # noqa: S105 - throwaway accounts in a temp deployment
# Enough distinct prepared requests that users and videos vary, few enough to build quickly.
PREPARED_CALLS = 512


class Progress(Protocol):
    """progress(step, done, total, detail): a step is e.g. `sqlite: feed`, in its own units."""

    def __call__(self, step: str, done: float, total: float, detail: str = "") -> None: ...


def no_progress(step: str, done: float, total: float, detail: str = "") -> None:
    """The Progress of a bench run without a terminal (tests, --json only): reports nothing."""


class BenchError(CarveoutError):
    """The bench could not measure: a server misbehaved or the data is missing."""


@dataclass(frozen=True)
class ApiBenchConfig:
    datasets: Path
    backends: tuple[str, ...] = BACKENDS
    seconds: float = 10.0  # measured, per scenario and app
    warmup: float = 2.0  # sent first, unmeasured: connections open, caches fill
    concurrency: int = 8
    batch: int = 50
    users: int = 32
    history: int = 80  # watch events each bench user posts first (KuaiRec users have 83)
    seed: int = 7

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise BenchError(f"backends must be among {', '.join(BACKENDS)}, got {unknown}")
        if self.seconds <= 0 or self.warmup < 0:
            raise BenchError("seconds must be positive and warm-up not negative")
        if not 1 <= self.batch <= 500:
            raise BenchError("batch must be 1..500 events (the API's limit)")
        if self.concurrency < 1 or self.users < 1 or self.history < 0:
            raise BenchError("concurrency and users must be at least 1, history at least 0")


@dataclass(frozen=True)
class Scenario:
    name: str
    unit: str  # what the throughput counts
    endpoint: str
    baseline_endpoint: str


FEED = Scenario("feed", "req/s", f"GET /v1/feed?limit={FEED_LIMIT}", "GET /ping")
INGEST = Scenario("ingest", "events/s", "POST /v1/events", "POST /echo")


@dataclass(frozen=True)
class ScenarioResult:
    backend: str
    scenario: Scenario
    carveout: Measurement
    baseline: Measurement

    @property
    def throughput_ratio(self) -> float:
        base = self.baseline.items_per_s
        return self.carveout.items_per_s / base if base else 0.0

    @property
    def p50_ratio(self) -> float:
        return self.carveout.p50_ms / self.baseline.p50_ms if self.baseline.p50_ms else 0.0

    @property
    def p99_ratio(self) -> float:
        return self.carveout.p99_ms / self.baseline.p99_ms if self.baseline.p99_ms else 0.0


@dataclass
class BackendReport:
    name: str
    version: str = ""
    skipped: str = ""  # why, when the backend could not run here
    notes: str = ""
    data: dict[str, int] = field(default_factory=dict)
    setup_seconds: float = 0.0


@dataclass
class ApiBenchResult:
    config: ApiBenchConfig
    backends: list[BackendReport] = field(default_factory=list)
    results: list[ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0


def run_api_bench(config: ApiBenchConfig, progress: Progress | None = None) -> ApiBenchResult:
    """Every backend of `config` in turn; every server and temp dir is gone when this returns."""
    report = progress or no_progress
    started = time.perf_counter()
    result = ApiBenchResult(config)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carveout-bench-")))
        baseline = stack.enter_context(UvicornServer(BASELINE_APP, "/ping"))
        for backend in config.backends:
            with _storage(backend) as (storage, version, notes):
                info = BackendReport(backend, version=version, notes=notes)
                result.backends.append(info)
                if storage is None:
                    info.skipped = notes
                    continue
                bench = _BackendBench(config, info, tmp / backend, baseline, report)
                result.results += bench.run(storage)
    result.seconds = time.perf_counter() - started
    return result


@contextmanager
def _storage(backend: str) -> Iterator[tuple[str | None, str, str]]:
    """(policy `storage` value or None when unavailable, server version, notes)."""
    if backend == "sqlite":
        yield "sqlite", sqlite3.sqlite_version, "WAL, one file per cell"
        return
    with private_cluster(partial(PgCluster, shared_buffers="128MB")) as pg:
        url = pg.server.fresh_url() if pg.server is not None else None
        yield url, pg.version, pg.notes or pg.skipped


class _BackendBench:
    """One backend: seed, serve, sign up, then feed and ingest, each next to its baseline."""

    def __init__(
        self,
        config: ApiBenchConfig,
        info: BackendReport,
        root: Path,
        baseline: UvicornServer,
        progress: Progress,
    ) -> None:
        self.config = config
        self.info = info
        self.root = root
        self.baseline = baseline
        self.progress = progress
        self.rng = random.Random(config.seed)  # noqa: S311 - reproducible load, not secrets

    def run(self, storage: str) -> list[ScenarioResult]:
        started = time.perf_counter()
        data_dir = self.root / "data"
        pool = self._seed(data_dir, storage)
        env = {DATA_ENV: str(data_dir)}
        with UvicornServer(CARVEOUT_APP, "/v1/health", env=env) as server:
            tokens = self._sign_up(server.url, pool)
            self.info.setup_seconds = round(time.perf_counter() - started, 1)
            feed = self._feed_calls(tokens)
            ingest = self._ingest_calls(tokens, pool)
            # Feed first: it should rank the seeded data, not the bench's own ingested events.
            feed_result = self._compare(FEED, server, feed, [Call("GET", "/ping", {})])
            # The baseline receives byte-for-byte the same batches, at its own path.
            echo = [Call("POST", "/echo", c.headers, c.content) for c in ingest]
            ingest_result = self._compare(INGEST, server, ingest, echo, batch=self.config.batch)
            return [feed_result, ingest_result]

    # --- setup -------------------------------------------------------------------------------

    def _seed(self, data_dir: Path, storage: str) -> list[dict[str, Any]]:
        """Load KuaiRec; return the real watch and impression events to replay as batches."""
        step = f"{self.info.name}: load KuaiRec"
        deployment = init_data_dir(data_dir, one_cell_policy(storage))
        try:
            load_kuairec(
                deployment,
                self.config.datasets,
                seed=self.config.seed,
                progress=lambda stage, done, total: self.progress(step, done, total, stage),
            )
            self.info.data = _counts(deployment)
            pool = _event_pool(deployment)
        finally:
            deployment.close()
        if not pool:
            raise BenchError("the KuaiRec import left no watch events to replay")
        return pool

    def _sign_up(self, url: str, pool: list[dict[str, Any]]) -> list[str]:
        """Sign up the bench users, and give each a watch history so the feed must skip it."""
        step = f"{self.info.name}: sign up users"
        n = self.config.users
        watches = [e for e in pool if e["kind"] == "watch"]
        tokens: list[str] = []
        with httpx.Client(base_url=url, timeout=60.0) as client:
            for i in range(n):
                body = {
                    "handle": f"bench{i}",
                    "display_name": f"Bench {i}",
                    "email": f"bench{i}@example.com",
                    "password": PASSWORD,
                    "birth_year": 1990,
                    "country": COUNTRIES[i % len(COUNTRIES)],
                }
                token = str(_ok(client.post("/v1/users", json=body))["token"])
                tokens.append(token)
                for start in range(0, self.config.history, 500):
                    size = min(500, self.config.history - start)
                    history = {"events": self.rng.sample(watches, min(size, len(watches)))}
                    _ok(client.post("/v1/events", json=history, headers=_auth(token)))
                self.progress(step, i + 1, n)
        return tokens

    def _feed_calls(self, tokens: list[str]) -> list[Call]:
        path = f"/v1/feed?limit={FEED_LIMIT}"
        return [Call("GET", path, _auth(self.rng.choice(tokens))) for _ in range(PREPARED_CALLS)]

    def _ingest_calls(self, tokens: list[str], pool: list[dict[str, Any]]) -> list[Call]:
        calls = []
        for _ in range(PREPARED_CALLS):
            body = {"events": self.rng.sample(pool, min(self.config.batch, len(pool)))}
            content = json.dumps(body, separators=(",", ":")).encode()
            headers = {**_auth(self.rng.choice(tokens)), "Content-Type": "application/json"}
            calls.append(Call("POST", "/v1/events", headers, content))
        return calls

    # --- measuring ---------------------------------------------------------------------------

    def _compare(
        self,
        scenario: Scenario,
        server: UvicornServer,
        calls: list[Call],
        baseline_calls: list[Call],
        *,
        batch: int = 1,
    ) -> ScenarioResult:
        self._check(self.baseline.url, baseline_calls[0])
        self._check(server.url, calls[0])
        step = f"{self.info.name}: {scenario.name}"
        # Baseline right before carveout: the two see the same machine state, give or take.
        base = self._measure(f"{step} (baseline)", self.baseline, baseline_calls, batch)
        mine = self._measure(f"{step} (carveout)", server, calls, batch)
        return ScenarioResult(self.info.name, scenario, carveout=mine, baseline=base)

    def _measure(
        self, step: str, server: UvicornServer, calls: list[Call], batch: int
    ) -> Measurement:
        total = self.config.warmup + self.config.seconds
        measured = run_load(
            server.url,
            calls,
            concurrency=self.config.concurrency,
            seconds=self.config.seconds,
            warmup=self.config.warmup,
            items_per_request=batch,
            tick=lambda elapsed: self.progress(step, min(elapsed, total), total),
            server_pid=server.pid,
        )
        if measured.requests == 0:
            raise BenchError(f"{step}: no request succeeded: {measured.first_error}")
        return measured

    @staticmethod
    def _check(url: str, call: Call) -> None:
        """One request before the load, so a broken setup fails with its reason, not a zero."""
        with httpx.Client(base_url=url, timeout=60.0) as client:
            _ok(client.request(call.method, call.path, headers=call.headers, content=call.content))


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise BenchError(
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code} {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _counts(deployment: Deployment) -> dict[str, int]:
    events = TABLES["events"]
    counts: dict[str, int] = {}
    for cell in deployment.cells():
        with cell.store.connect() as conn:
            for table in ("users", "videos"):
                n = conn.execute(sa.select(sa.func.count()).select_from(TABLES[table])).scalar()
                counts[table] = counts.get(table, 0) + int(n or 0)
            by_kind = conn.execute(
                sa.select(events.c.kind, sa.func.count()).group_by(events.c.kind)
            ).all()
            for kind, n in by_kind:
                counts[f"{kind}_events"] = counts.get(f"{kind}_events", 0) + int(n)
    return counts


def _event_pool(deployment: Deployment) -> list[dict[str, Any]]:
    """The seeded watch and impression events as request bodies: real videos, real watch times."""
    events = TABLES["events"]
    pool: list[dict[str, Any]] = []
    stmt = sa.select(events.c.video_id, events.c.kind, events.c.watched_ms).where(
        events.c.kind.in_(("watch", "impression"))
    )
    for cell in deployment.cells():
        with cell.store.connect() as conn:
            for video_id, kind, watched_ms in conn.execute(stmt):
                event: dict[str, Any] = {"video_id": video_id, "kind": kind}
                if watched_ms is not None:
                    event["watched_ms"] = watched_ms
                pool.append(event)
    # Rows come back in no fixed order: sorted, a seed samples the same events every run.
    pool.sort(key=lambda e: (e["video_id"], e["kind"], e.get("watched_ms", -1)))
    return pool
