"""`carveout bench privacy`: access export and erasure p50/p95, next to a plain script, per backend.

For each backend a fresh one-cell deployment gets a SYNTHETIC population calibrated on KuaiRec
(privacy_population.py) and a recommender model trained on it, and is served by uvicorn in its
own process. Each run signs up a typical and a heavy user through the API (and a twin of each
for the baseline's erasure), gives them their profile's history, then times carveout's export
and erasure over HTTP and the plain script's dump and delete, alternating which goes first.
Every export is checked row for row, every receipt against the rows the user had, and after
every erasure the cell's files are scanned for the user's email, handle and display name: a
wrong receipt or a single hit fails the run."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

from carveout.bench.api import CARVEOUT_APP, BenchError, Progress, no_progress
from carveout.bench.privacy_calibration import Calibration, Profile, read_calibration
from carveout.bench.privacy_measure import (
    PlainScript,
    after_scan,
    check_archive,
    check_receipt,
    control_scan,
    expected_receipt,
    hits_error,
    http_erase,
    http_export,
)
from carveout.bench.privacy_population import Population, build_population, read_clips
from carveout.bench.privacy_subjects import (
    Subject,
    check_profile,
    give_history,
    rows_held,
    sign_up,
)
from carveout.bench.private_pg import private_cluster
from carveout.bench.servers import UvicornServer
from carveout.cells import Cell, init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.core.settings import DATA_ENV
from carveout.privacy.scan import cell_paths
from carveout.recommend.training import train_cell
from carveout.storage.pgcluster import PgCluster

BACKENDS = ("sqlite", "postgresql")
KINDS = ("typical", "heavy")
DATA_LABEL = (
    "SYNTHETIC population and measured users (seeded), calibrated on real KuaiRec watch ratios "
    "and user features (CC BY-SA 4.0) and KuaiRand durations; media are the real ThreatExchange "
    "sample clips (each measured upload made unique by a random trailer)"
)
__all__ = [
    "BACKENDS",
    "DATA_LABEL",
    "KINDS",
    "BackendRun",
    "Measured",
    "PrivacyBenchConfig",
    "PrivacyBenchResult",
    "run_privacy_bench",
]


@dataclass(frozen=True)
class PrivacyBenchConfig:
    datasets: Path
    backends: tuple[str, ...] = BACKENDS
    quick: bool = False
    runs: int | None = None  # measured users of each kind per backend
    population: int | None = None  # synthetic users around them
    seed: int = 7
    train: bool = True  # a recommender model, so exports and erasure reach its state

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise BenchError(f"backends must be among {', '.join(BACKENDS)}, got {unknown}")
        if self.runs is not None and self.runs < 1:
            raise BenchError("runs must be at least 1")
        if self.population is not None and self.population < 50:
            raise BenchError("the population must be at least 50 users")

    @property
    def n_runs(self) -> int:
        return self.runs or (1 if self.quick else 20)

    @property
    def n_users(self) -> int:
        return self.population or (300 if self.quick else 10_000)


@dataclass
class Measured:
    """One profile on one backend: every run's seconds, and what was verified."""

    profile: Profile
    export_s: list[float] = field(default_factory=list)
    baseline_export_s: list[float] = field(default_factory=list)
    erase_s: list[float] = field(default_factory=list)
    baseline_erase_s: list[float] = field(default_factory=list)
    archive_bytes: list[int] = field(default_factory=list)
    exports_verified: int = 0
    receipts_verified: int = 0
    control_hits: int = 0  # hits in the export before erasure (must be > 0)
    scan_hits: int = 0  # hits after erasure (must be 0)


@dataclass
class BackendRun:
    backend: str
    version: str = ""
    notes: str = ""
    skipped: str = ""
    population: dict[str, int] = field(default_factory=dict)
    setup_s: float = 0.0
    train_s: float = 0.0
    model: str | None = None
    measured: dict[str, Measured] = field(default_factory=dict)
    scans: int = 0
    scan_s: float = 0.0
    scanned: list[str] = field(default_factory=list)
    datadir_scan: dict[str, Any] = field(default_factory=dict)  # PostgreSQL's own files
    load: list[float] = field(default_factory=list)  # 1-minute load average at each user


@dataclass
class PrivacyBenchResult:
    config: PrivacyBenchConfig
    calibration: dict[str, Any]
    runs: list[BackendRun]
    seconds: float = 0.0


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    return float(np.percentile(values, q)) if values else 0.0


def run_privacy_bench(
    config: PrivacyBenchConfig, progress: Progress | None = None
) -> PrivacyBenchResult:
    """Every backend in turn; every server, cluster and temp folder is gone when this returns."""
    report = progress or no_progress
    started = time.perf_counter()
    cal = read_calibration(config.datasets)
    clips = read_clips(config.datasets)
    runs: list[BackendRun] = []
    with tempfile.TemporaryDirectory(prefix="carveout-bench-") as tmp:
        for backend in config.backends:
            with _storage(backend) as (storage, run, cluster):
                runs.append(run)
                if storage is not None:
                    bench = _BackendBench(config, cal, run, Path(tmp) / backend, report)
                    bench.run(storage, clips, cluster)
    return PrivacyBenchResult(config, cal.as_json(), runs, time.perf_counter() - started)


@contextlib.contextmanager
def _storage(backend: str) -> Iterator[tuple[str | None, BackendRun, PgCluster | None]]:
    if backend == "sqlite":
        yield "sqlite", BackendRun(backend, sqlite3.sqlite_version, "WAL, one file per cell"), None
        return
    with private_cluster(PgCluster) as pg:
        run = BackendRun(backend, pg.version, pg.notes, pg.skipped)
        yield (pg.server.fresh_url("privbench") if pg.server else None), run, pg.server


class _BackendBench:
    def __init__(
        self,
        config: PrivacyBenchConfig,
        cal: Calibration,
        run: BackendRun,
        root: Path,
        report: Progress,
    ) -> None:
        self.config = config
        self.cal = cal
        self.out = run
        self.root = root
        self.report = report
        self.rng = np.random.default_rng([config.seed, 0x5B1])
        users = config.n_users
        self.profiles = {"typical": cal.typical().within(users), "heavy": cal.heavy().within(users)}
        self.erased: list[Subject] = []

    def run(self, storage: str, clips: list[Any], cluster: PgCluster | None) -> None:
        began = time.perf_counter()
        data_dir = self.root / "data"
        deployment = init_data_dir(data_dir, one_cell_policy(storage))
        try:
            cell = deployment.cell("global")
            step = f"{self.out.backend}: setup"
            pop = build_population(
                cell,
                self.cal,
                clips,
                self.config.n_users,
                self.config.seed,
                lambda _s, done, total: self.report(step, done, total, "synthetic population"),
            )
            self.out.population = dict(pop.rows)
            if self.config.train:
                self.report(step, 1, 1, "training the recommender")
                t0 = time.perf_counter()
                self.out.model = train_cell(cell, seed=self.config.seed).version
                self.out.train_s = time.perf_counter() - t0
            self.out.setup_s = time.perf_counter() - began
            env = {DATA_ENV: str(data_dir)}
            with (
                UvicornServer(CARVEOUT_APP, "/v1/health", env=env) as server,
                httpx.Client(base_url=server.url, timeout=600.0) as client,
            ):
                self._runs(cell, data_dir, pop, client)
            if cluster is not None:
                self._scan_cluster(cluster)
        finally:
            deployment.close()
            shutil.rmtree(data_dir, ignore_errors=True)

    def _runs(self, cell: Cell, data_dir: Path, pop: Population, client: httpx.Client) -> None:
        script = PlainScript(cell)
        try:
            # One unmeasured user first: the server loads the model and the catalogue, pools
            # fill. Checked like the others.
            self._one(cell, data_dir, pop, client, script, "typical", None, 0)
            n = self.config.n_runs
            for i in range(n):
                for kind in KINDS:
                    self.report(f"{self.out.backend}: runs", i, n, kind)
                    measured = self.out.measured.setdefault(kind, Measured(self.profiles[kind]))
                    self._one(cell, data_dir, pop, client, script, kind, measured, i)
            self.report(f"{self.out.backend}: runs", n, n, "done")
        finally:
            script.close()

    def _one(
        self,
        cell: Cell,
        data_dir: Path,
        pop: Population,
        client: httpx.Client,
        script: PlainScript,
        kind: str,
        into: Measured | None,
        i: int,
    ) -> None:
        profile = self.profiles[kind]
        subject, twin = sign_up(client, self.rng, kind), sign_up(client, self.rng, kind)
        for who in (subject, twin):
            give_history(cell, self.cal, pop, who, profile, self.rng)
            check_profile(rows_held(cell, who.user_id), profile)
        held = rows_held(cell, subject.user_id)
        dump = self.root / f"baseline-{subject.user_id}.json"
        # Alternate who goes first, so neither always meets the other's warm cache.
        if i % 2:
            base_export = script.export(subject.user_id, dump)
            export_s, archive = http_export(client, subject)
        else:
            export_s, archive = http_export(client, subject)
            base_export = script.export(subject.user_id, dump)
        dump.unlink()
        derived = check_archive(archive, subject, held)
        control = control_scan(cell, subject)
        if i % 2:
            base_erase = script.erase(twin.user_id)
            erase_s, receipt = http_erase(client, subject)
        else:
            erase_s, receipt = http_erase(client, subject)
            base_erase = script.erase(twin.user_id)
        expected = expected_receipt(held, subject, 1, 1 if derived.get("model") else 0)
        check_receipt(receipt, subject, expected)
        for sha in twin.blob_shas:  # a plain DELETE leaves the media behind: tidied, untimed
            cell.blobs.delete(sha)
        self.erased.append(subject)
        began = time.perf_counter()
        paths = cell_paths(cell, data_dir)
        hits = after_scan(paths, [subject])
        self.out.scan_s += time.perf_counter() - began
        self.out.scans += 1
        self.out.scanned = [str(p.relative_to(data_dir)) for p in paths]
        if hits:
            raise hits_error(hits, f"after erasing {kind} user {subject.user_id}")
        if into is None:
            return
        self.out.load.append(os.getloadavg()[0])
        into.export_s.append(export_s)
        into.baseline_export_s.append(base_export)
        into.erase_s.append(erase_s)
        into.baseline_erase_s.append(base_erase)
        into.archive_bytes.append(len(archive))
        into.exports_verified += 1
        into.receipts_verified += 1
        into.control_hits += control

    def _scan_cluster(self, cluster: PgCluster) -> None:
        """PostgreSQL keeps the cell's rows in its own data directory (heap, indexes, WAL):
        after a checkpoint, every erased user's strings are looked for there too."""
        self.report(f"{self.out.backend}: scan", 0, 1, "cluster data directory")
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        began = time.perf_counter()
        hits, size, gone = [], 0, 0
        # The server runs on: a file may vanish between listing and reading (pg_internal.init).
        for path in sorted(p for p in cluster.datadir.rglob("*") if p.is_file()):
            try:
                size += path.stat().st_size
                hits += after_scan([path], self.erased)
            except FileNotFoundError:
                gone += 1
        self.out.datadir_scan = {
            "users": len(self.erased),
            "bytes": size,
            "files_gone_while_scanning": gone,
            "hits": len(hits),
            "seconds": round(time.perf_counter() - began, 1),
        }
        if hits:
            raise hits_error(hits, "in the PostgreSQL data directory")
        self.report(f"{self.out.backend}: scan", 1, 1, "cluster data directory")
