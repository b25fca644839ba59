"""What one request of the carve bench's write mix costs the server, measured in process.

The same mix as `carveout bench carve` (event batches of 5 watch events, likes, comments,
follows on the KuaiRec-loaded cell), sent one at a time straight into the ASGI app (no HTTP,
no client process, no concurrency), so each figure is the server's own cost of a request:
wall time, this process's CPU time, and on PostgreSQL the database server's CPU time and
the statements sent. Run it as a module; with PYTHONPATH naming another checkout's `src`,
it measures that version (the file only uses what both have):

    python -m carveout.bench.carve_requests --backend postgresql --requests 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.types import ASGIApp, Message

from carveout.api import create_app
from carveout.bench.carve_bench import _ids
from carveout.cells import Deployment, init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.core.settings import datasets_dir
from carveout.datasets import load_kuairec
from carveout.storage import PgCluster

KINDS = ("events", "like", "comment", "follow")
MIX = {"events": 0.4, "like": 0.25, "comment": 0.2, "follow": 0.15}  # as carve_load.MIX
MOVING = ("US", "CA", "AU", "NZ")
COUNTRIES = (*MOVING, "GB", "DE", "BR", "JP")
BATCH = 5
WARM_ROUNDS = 40


@dataclass
class KindCost:
    requests: int
    wall_ms_mean: float
    wall_ms_p50: float
    wall_ms_p90: float
    cpu_ms: float  # this process, per request
    statements: float  # cursor executions per request (an executemany counts once)
    commits: float  # transactions committed per request


@dataclass
class RequestCosts:
    backend: str
    requests_per_kind: int
    kinds: dict[str, KindCost] = field(default_factory=dict)
    mix_wall_ms: float = 0.0
    mix_cpu_ms: float = 0.0
    mix_statements: float = 0.0
    database_cpu_ms: float | None = None  # PostgreSQL's processes, per request of the run
    load_average: tuple[float, float] = (0.0, 0.0)  # 1-minute, before and after


async def _call(
    app: ASGIApp, method: str, path: str, body: Any | None, token: str | None
) -> tuple[int, bytes]:
    raw = json.dumps(body).encode() if body is not None else b""
    headers = [(b"host", b"bench")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if body is not None:
        headers += [(b"content-type", b"application/json")]
        headers += [(b"content-length", str(len(raw)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    sent = False
    status = 0
    out = bytearray()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            out.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(out)


def _cluster_cpu_s(cluster: PgCluster) -> float:
    """CPU seconds of the cluster's postmaster and its children so far (Linux /proc)."""
    pid_file = cluster.datadir / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(proc.name) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class _Mix:
    """The carve bench's requests: each writer's next untouched like/follow target, event
    batches and comments on random videos of its own side of the border."""

    def __init__(self, writers: list[tuple[str, bool]], pools: dict[bool, Any], seed: int):
        self.writers = writers
        self.pools = pools
        self.rng = random.Random(seed)  # noqa: S311 - reproducible load, not secrets
        self.next_target: dict[tuple[int, str], int] = {}
        self.serial = 0

    def _target(self, writer: int, moving: bool, what: str) -> str:
        pool = self.pools[moving][0 if what == "video" else 1]
        i = self.next_target.get((writer, what), self.rng.randrange(len(pool)))
        self.next_target[(writer, what)] = i + 1
        return str(pool[i % len(pool)])

    def request(self, kind: str, writer: int) -> tuple[str, str, Any | None, str]:
        token, moving = self.writers[writer]
        self.serial += 1
        videos = self.pools[moving][0]
        if kind == "events":
            events = [
                {
                    "video_id": self.rng.choice(videos),
                    "kind": "watch",
                    "watched_ms": self.serial * 10 + j,
                }
                for j in range(BATCH)
            ]
            return "POST", "/v1/events", {"events": events}, token
        if kind == "like":
            return "PUT", f"/v1/videos/{self._target(writer, moving, 'video')}/like", None, token
        if kind == "comment":
            body = {"body": f"cb-{self.serial}"}
            return "POST", f"/v1/videos/{self.rng.choice(videos)}/comments", body, token
        return "PUT", f"/v1/users/{self._target(writer, moving, 'user')}/follow", None, token


@contextmanager
def _deployment(
    backend: str, root: Path, datasets: Path
) -> Iterator[tuple[Deployment, PgCluster | None]]:
    cluster = None
    storage = "sqlite"
    if backend == "postgresql":
        cluster = PgCluster()
        cluster.start()
        storage = cluster.fresh_url("requests")
    try:
        deployment = init_data_dir(root / "data", one_cell_policy(storage))
        try:
            load_kuairec(deployment, datasets, seed=7)
            yield deployment, cluster
        finally:
            deployment.close()
    finally:
        if cluster is not None:
            cluster.stop()


async def _measure(deployment: Deployment, cluster: PgCluster | None, n: int) -> RequestCosts:
    cell = deployment.cells()[0]
    cell.store.analyze()
    with cell.store.connect() as conn:
        pools = {
            m: (_ids(conn, "videos", MOVING, m), _ids(conn, "users", MOVING, m))
            for m in (True, False)
        }
    app = create_app(deployment)
    writers = []
    for country in COUNTRIES:
        for i in range(2):
            handle = f"w_{country.lower()}_{i}"
            body = {
                "handle": handle,
                "display_name": handle,
                "email": f"{handle}@example.com",
                "password": "bench password 1234",
                "birth_year": 1990,
                "country": country,
            }
            status, raw = await _call(app, "POST", "/v1/users", body, None)
            assert status == 201, raw
            writers.append((str(json.loads(raw)["token"]), country in MOVING))
    mix = _Mix(writers, pools, seed=7)
    for i in range(WARM_ROUNDS):
        for kind in KINDS:
            status, raw = await _call(app, *mix.request(kind, i % len(writers)))
            assert status < 300, (kind, status, raw)
    engine = getattr(cell.store, "engine", None)
    executed, committed = [0], [0]

    def count(*_args: Any) -> None:
        executed[0] += 1

    def count_commit(*_args: Any) -> None:
        committed[0] += 1

    if engine is not None:
        sa.event.listen(engine, "before_cursor_execute", count)
        sa.event.listen(engine, "commit", count_commit)
    walls: dict[str, list[float]] = {k: [] for k in KINDS}
    cpu = dict.fromkeys(KINDS, 0.0)
    statements = dict.fromkeys(KINDS, 0)
    commits = dict.fromkeys(KINDS, 0)
    db_before = _cluster_cpu_s(cluster) if cluster is not None else 0.0
    for i in range(n):
        for kind in KINDS:
            request = mix.request(kind, i % len(writers))
            before, before_commits = executed[0], committed[0]
            c0, t0 = time.process_time(), time.perf_counter()
            status, raw = await _call(app, *request)
            walls[kind].append((time.perf_counter() - t0) * 1000)
            cpu[kind] += time.process_time() - c0
            statements[kind] += executed[0] - before
            commits[kind] += committed[0] - before_commits
            assert status < 300, (kind, status, raw)
    result = RequestCosts(backend=cell.store.backend, requests_per_kind=n)
    if cluster is not None:
        result.database_cpu_ms = (_cluster_cpu_s(cluster) - db_before) * 1000 / (n * len(KINDS))
    for kind in KINDS:
        xs = sorted(walls[kind])
        result.kinds[kind] = KindCost(
            requests=n,
            wall_ms_mean=round(statistics.fmean(xs), 3),
            wall_ms_p50=round(xs[len(xs) // 2], 3),
            wall_ms_p90=round(xs[int(len(xs) * 0.9)], 3),
            cpu_ms=round(cpu[kind] * 1000 / n, 3),
            statements=round(statements[kind] / n, 2),
            commits=round(commits[kind] / n, 2),
        )
    result.mix_wall_ms = round(sum(result.kinds[k].wall_ms_mean * w for k, w in MIX.items()), 3)
    result.mix_cpu_ms = round(sum(result.kinds[k].cpu_ms * w for k, w in MIX.items()), 3)
    result.mix_statements = round(sum(result.kinds[k].statements * w for k, w in MIX.items()), 2)
    return result


def measure(backend: str, requests: int, datasets: Path) -> RequestCosts:
    """Load KuaiRec into a fresh one-cell deployment on `backend` and measure the mix."""
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="carveout-requests-") as tmp,
        _deployment(backend, Path(tmp), datasets) as (deployment, cluster),
    ):
        result = asyncio.run(_measure(deployment, cluster, requests))
    result.load_average = (load_before, os.getloadavg()[0])
    return result


def _table(r: RequestCosts) -> str:
    lines = [f"{r.backend}: {r.requests_per_kind} requests of each kind, one at a time"]
    for kind, c in r.kinds.items():
        lines.append(
            f"  {kind:8s} wall mean {c.wall_ms_mean:6.2f} ms, p50 {c.wall_ms_p50:6.2f}, "
            f"p90 {c.wall_ms_p90:6.2f}; CPU {c.cpu_ms:5.2f} ms; {c.statements:4.1f} statements, "
            f"{c.commits:3.1f} commits"
        )
    db = "" if r.database_cpu_ms is None else f", PostgreSQL CPU {r.database_cpu_ms:.2f} ms"
    lines.append(
        f"  mix: wall {r.mix_wall_ms:.2f} ms, CPU {r.mix_cpu_ms:.2f} ms{db}, "
        f"{r.mix_statements:.1f} statements per request "
        f"(load average {r.load_average[0]:.2f} -> {r.load_average[1]:.2f})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--requests", type=int, default=300, help="of each kind")
    parser.add_argument("--datasets", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="append the result here")
    args = parser.parse_args(argv)
    result = measure(args.backend, args.requests, datasets_dir(args.datasets))
    print(_table(result))
    if args.json is not None:
        with args.json.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(result)) + "\n")


if __name__ == "__main__":
    main()
