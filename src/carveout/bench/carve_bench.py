"""`carveout bench carve`: a live carve under a write load, measured against its baselines.

A fresh one-cell deployment holds the real KuaiRec data and is served by uvicorn in its own
process; a client process writes to it at a fixed rate, half for the moving jurisdictions, and
keeps a ledger of what was acknowledged; the carve runs meanwhile (in this process, or as CLI
subprocesses SIGKILLed and resumed). The ledger is then checked against the cells. On PostgreSQL
the source cell and the carve's target are databases of one private local server (started here
unless one is given), dropped afterwards."""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from carveout import carve
from carveout.bench import carve_pg
from carveout.bench.api import (
    CARVEOUT_APP,
    DATA_LABEL,
    PASSWORD,
    BenchError,
    Progress,
    _ok,
    no_progress,
)
from carveout.bench.carve_baseline import CopyRate, backup_api, file_copy, total_rows
from carveout.bench.carve_chaos import ChaosReport, run_with_kills
from carveout.bench.carve_ledger import LedgerCheck, check_ledger
from carveout.bench.carve_load import LoadPlan, LoadProcess, LoadResult, Writer
from carveout.bench.carve_measure import CarveMeasure, measure_in_process
from carveout.bench.servers import UvicornServer
from carveout.carve.capture import carved_tables
from carveout.cells import Deployment, init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.core.settings import DATA_ENV
from carveout.datamap import TABLES
from carveout.datasets import load_kuairec
from carveout.recommend import train_cell
from carveout.storage import PgCluster
from carveout.storage.pgcluster import DURABILITY

__all__ = ["BACKENDS", "DATA_LABEL", "CarveBenchConfig", "CarveBenchResult", "run_carve_bench"]

BACKENDS = ("sqlite", "postgresql")
SOURCE = "global"
TICK_S = 0.25


@dataclass(frozen=True)
class CarveBenchConfig:
    datasets: Path
    backends: tuple[str, ...] = ("sqlite",)
    moving: tuple[str, ...] = ("US", "CA", "AU", "NZ")
    staying: tuple[str, ...] = ("GB", "DE", "BR", "JP")
    target: str = "na-anz"
    # Write requests per second, half to each side: ~2.6 writes (rows) each with batch 5, so
    # 170 requests/s make the 400 writes/s with room left on a 2-core machine.
    rate: float = 170.0
    batch: int = 5  # watch events per events request (one write)
    writers_per_country: int = 2
    before: float = 5.0  # seconds of load before the carve starts: the quiet reference
    after: float = 3.0  # seconds of load after the carve ends
    max_in_flight: int = 128
    kill_at_random: int = 0
    kill_max_s: float = 1.5  # each kill comes uniformly within this long after an attempt starts
    seed: int = 7
    # PostgreSQL: the target (and the baselines' copies) on a second private server of this
    # machine, as a carved cell handed to a new owner would be; or on the source's server.
    same_server: bool = False

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise BenchError(f"backends must be among {', '.join(BACKENDS)}, got {unknown}")
        if self.rate <= 0 or self.before < 0 or self.after < 0:
            raise BenchError("rate must be positive, before and after not negative")
        if not 1 <= self.batch <= 500 or self.writers_per_country < 1:
            raise BenchError("batch must be 1..500 and writers per country at least 1")
        if self.kill_at_random < 0 or self.kill_max_s <= 0:
            raise BenchError("kill-at-random must be >= 0 and the kill window positive")
        if set(self.moving) & set(self.staying) or not self.moving or not self.staying:
            raise BenchError("moving and staying jurisdictions must be non-empty and disjoint")


@dataclass
class BackendRun:
    backend: str
    skipped: str = ""
    server: str = ""  # PostgreSQL: version and settings of the private server
    data: dict[str, int] = field(default_factory=dict)
    writers: int = 0
    load: LoadResult | None = None
    carve_window: tuple[float, float] = (0.0, 0.0)
    measure: CarveMeasure | None = None  # the clean run's phase timings and rates
    chaos: ChaosReport | None = None
    baselines: list[CopyRate] = field(default_factory=list)
    ledger: LedgerCheck | None = None
    rows_to_copy: int = 0  # J's rows in the carved tables when the carve started
    # The server's log, kept when any request got a 5xx: its tracebacks say why (the log file
    # itself goes with the server).
    server_log: str = ""


@dataclass
class CarveBenchResult:
    config: CarveBenchConfig
    runs: list[BackendRun] = field(default_factory=list)
    seconds: float = 0.0


def run_carve_bench(
    config: CarveBenchConfig, progress: Progress | None = None, pg: PgCluster | None = None
) -> CarveBenchResult:
    """Every backend in turn; the server, the client process, the temp dir, the PostgreSQL
    databases (and the PostgreSQL server unless `pg` was given) are gone after."""
    report = progress or no_progress
    began = time.perf_counter()
    result = CarveBenchResult(config)
    for backend in config.backends:
        run = BackendRun(backend)
        result.runs.append(run)
        with tempfile.TemporaryDirectory(prefix="carveout-bench-carve-") as tmp:
            if backend == "sqlite":
                _Bench(config, run, Path(tmp), report).run()
            else:
                _run_postgresql(config, run, Path(tmp), report, pg)
    result.seconds = time.perf_counter() - began
    return result


def _run_postgresql(
    config: CarveBenchConfig,
    run: BackendRun,
    root: Path,
    progress: Progress,
    given: PgCluster | None,
) -> None:
    """The source on `given` (or a private server started here), the target and the baselines'
    copies on a second private server of the same machine unless `same_server`. Two servers is
    how a carve runs for real (the carved cell goes to another owner's database), and it keeps
    the target's incoming copy out of the WAL that the source's logical decoding reads: on one
    server every WAL sender of the carve (the subscription's and each table synchronisation's)
    decodes past the target's own writes too."""
    with ExitStack() as servers:
        progress("start PostgreSQL", 0, 1)
        source = given or _started(servers)
        target = source if config.same_server else _started(servers)
        progress("start PostgreSQL", 1, 1)
        where = "one private local server" if config.same_server else "two private local servers"
        run.server = f"PostgreSQL {source.version()}, {where} (source; target), {DURABILITY}"
        src = source.fresh_url("carvebench_src")
        tgt = target.fresh_url("carvebench_tgt")
        try:
            _Bench(config, run, root, progress, target, src, tgt).run()
        finally:
            # The subscription first (on the target), then the source's slots.
            carve_pg.drop_all(target, [tgt])
            carve_pg.drop_all(source, [src])


def _started(servers: ExitStack) -> PgCluster:
    cluster = PgCluster()
    cluster.start()
    servers.callback(cluster.stop)
    return cluster


class _Bench:
    def __init__(
        self,
        config: CarveBenchConfig,
        run: BackendRun,
        root: Path,
        progress: Progress,
        pg: PgCluster | None = None,  # the server the baselines copy into (the target's)
        source_storage: str = "sqlite",
        target_storage: str = "sqlite",
    ) -> None:
        self.pg = pg
        self.source_storage = source_storage
        self.target_storage = target_storage
        self.config = config
        self.info = run
        self.root = root
        self.data_dir = root / "data"
        self.progress = progress

    def run(self) -> None:
        pools = self._seed()
        with ExitStack() as stack:
            server = stack.enter_context(
                UvicornServer(CARVEOUT_APP, "/v1/health", env={DATA_ENV: str(self.data_dir)})
            )
            writers = self._sign_up(server.url)
            plan = LoadPlan(
                url=server.url,
                writers=writers,
                videos={m: pools[m][0] for m in (True, False)},
                users={m: pools[m][1] for m in (True, False)},
                rate=self.config.rate,
                batch=self.config.batch,
                max_in_flight=self.config.max_in_flight,
                seed=self.config.seed,
            )
            load = LoadProcess(plan, self.root)
            stack.callback(load.kill)
            load.start()
            self._wait("load before the carve", self.config.before, load)
            self.info.baselines = self._baselines()
            self.info.rows_to_copy = self._rows_to_copy()
            carve_began = time.monotonic()
            if self.config.kill_at_random:
                self.info.chaos = self._chaos()
            else:
                self.info.measure = self._clean()
            self.info.carve_window = (carve_began, time.monotonic())
            self._wait("load after the carve", self.config.after, load)
            self.info.load = load.stop()
            if self.info.load.server_errors:
                self.info.server_log = server.log_text()
        deployment = Deployment.open(self.data_dir)
        try:
            self.info.ledger = check_ledger(deployment, writers, self.info.load.ledger)
        finally:
            deployment.close()

    # --- setup -------------------------------------------------------------------------------

    def _seed(self) -> dict[bool, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Load KuaiRec; return, per side (True: moving), the videos and users writes target."""
        step = "load KuaiRec"
        # One `global` cell on the backend measured.
        deployment = init_data_dir(self.data_dir, one_cell_policy(self.source_storage))
        try:
            load_kuairec(
                deployment,
                self.config.datasets,
                seed=self.config.seed,
                progress=lambda stage, done, total: self.progress(step, done, total, stage),
            )
            # A serving cell has a model. Without one the server trains at start-up, in its
            # own process, for seconds of the load's quiet reference window.
            self.progress("train the source's recommender", 0, 1)
            train_cell(deployment.cell(SOURCE))
            self.progress("train the source's recommender", 1, 1)
            pools = {}
            with deployment.cell(SOURCE).store.connect() as conn:
                for moving in (True, False):
                    pools[moving] = (
                        _ids(conn, "videos", self.config.moving, moving),
                        _ids(conn, "users", self.config.moving, moving),
                    )
                for table in ("users", "videos", "events", "likes"):
                    n = conn.execute(sa.select(sa.func.count()).select_from(TABLES[table]))
                    self.info.data[table] = int(n.scalar_one())
        finally:
            deployment.close()
        return pools

    def _sign_up(self, url: str) -> tuple[Writer, ...]:
        step = "sign up writers"
        countries = [*self.config.moving, *self.config.staying]
        total = len(countries) * self.config.writers_per_country
        writers = []
        with httpx.Client(base_url=url, timeout=60.0) as client:
            for n in range(self.config.writers_per_country):
                for country in countries:
                    handle = f"carvebench_{country.lower()}_{n}"
                    body = {
                        "handle": handle,
                        "display_name": handle,
                        "email": f"{handle}@example.com",
                        "password": PASSWORD,
                        "birth_year": 1990,
                        "country": country,
                    }
                    got = _ok(client.post("/v1/users", json=body))
                    writers.append(
                        Writer(
                            user_id=str(got["user"]["id"]),
                            token=str(got["token"]),
                            country=country,
                            moving=country in self.config.moving,
                        )
                    )
                    self.progress(step, len(writers), total)
        self.info.writers = len(writers)
        return tuple(writers)

    def _wait(self, step: str, seconds: float, load: LoadProcess) -> None:
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < seconds:
            detail = f"{load.acked:,} writes acked, {load.errors} errors"
            self.progress(step, elapsed, seconds, detail)
            if not load.alive:
                raise BenchError("the load generator died")
            time.sleep(min(TICK_S, seconds - elapsed))
        self.progress(step, seconds, seconds, f"{load.acked:,} writes acked")

    # --- measuring ---------------------------------------------------------------------------

    def _baselines(self) -> list[CopyRate]:
        """Under the same write load, right before the carve: the copies a user would script."""
        if self.pg is not None:
            self.progress("copy baselines: pg_dump | psql", 0, 2)
            # Into fresh databases of the target's server, as the carve copies.
            dump = carve_pg.pg_dump_psql(self.pg, self.source_storage)
            self.progress("copy baselines: pg_dump | psql", 1, 2)
            subset = carve_pg.pg_subset_copy(self.pg, self.source_storage, self.config.moving)
            self.progress("copy baselines: pg_dump | psql", 2, 2)
            return [dump, subset]
        self.progress("copy baselines", 0, 2)
        source = self.data_dir / "cells" / SOURCE / "cell.db"
        deployment = Deployment.open(self.data_dir)
        try:
            rows = total_rows(deployment.cell(SOURCE).store)
        finally:
            deployment.close()
        backup = backup_api(source, self.root / "backup.db", rows)
        self.progress("copy baselines", 1, 2)
        raw = file_copy(source, self.root / "raw.db", rows)
        self.progress("copy baselines", 2, 2)
        for path in self.root.glob("*.db*"):
            path.unlink()
        return [backup, raw]

    def _rows_to_copy(self) -> int:
        deployment = Deployment.open(self.data_dir)
        try:
            with deployment.cell(SOURCE).store.connect() as conn:
                return sum(
                    int(
                        conn.execute(
                            sa.select(sa.func.count())
                            .select_from(TABLES[t.name])
                            .where(TABLES[t.name].c.domicile.in_(self.config.moving))
                        ).scalar_one()
                    )
                    for t in carved_tables()
                )
        finally:
            deployment.close()

    def _clean(self) -> CarveMeasure:
        deployment = Deployment.open(self.data_dir)
        try:
            spec = carve.start(
                deployment, self.config.moving, self.config.target, storage=self.target_storage
            )
            return measure_in_process(deployment, spec, self.progress, self.info.rows_to_copy)
        finally:
            deployment.close()

    def _chaos(self) -> ChaosReport:
        n = self.config.kill_at_random
        step = "carve with kills"
        self.progress(step, 0, n)
        report = run_with_kills(
            self.data_dir,
            self.config.moving,
            self.config.target,
            n,
            self.config.seed,
            self.config.kill_max_s,
            self.target_storage,
            lambda attempt, kills, phase: self.progress(
                step, kills, n, f"attempt {attempt} killed in {phase or 'start-up'}"
            ),
        )
        self.progress(step, n, n, f"done after {len(report.kills)} kills")
        return report


def _ids(conn: sa.Connection, table: str, moving: tuple[str, ...], side: bool) -> tuple[str, ...]:
    tbl = TABLES[table]
    where = tbl.c.domicile.in_(moving) if side else ~tbl.c.domicile.in_(moving)
    stmt = sa.select(tbl.c.id).where(where).order_by(tbl.c.id)
    if table == "videos":
        # Likes and comments need a video the writer may see: published, restricted nowhere.
        restricted = sa.select(TABLES["video_restrictions"].c.video_id)
        stmt = stmt.where(tbl.c.status == "published", ~tbl.c.id.in_(restricted))
    return tuple(str(r[0]) for r in conn.execute(stmt))
