"""`carveout bench backup`: backup and restore MB/s next to the raw tools, same data, same run.

For each backend a fresh one-cell deployment is loaded with the real KuaiRec data. The baseline
is what an operator would script instead: SQLite's online backup API (what `sqlite3 .backup`
calls) or `pg_dump -Fc`, with the blob folder through `tar | zstd`; restored with `zstd -d | tar
-x` (and `pg_restore`). carveout's backup adds per-table checksums, chunking, AES-GCM, sha256 per
chunk, a signed manifest and fsyncs; its restore checks all of them and compares every table.
The transfer bundle's export and import of US, CA, AU and NZ are measured on the same
deployment, next to `tar | zstd -3` of the same rows and blob files (see bench/bundle.py).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from carveout.backup import Timings, restore_backup, run_backup
from carveout.backup.pgtools import (
    create_database,
    drop_database,
    libpq_url,
    pg_tool,
    with_database,
)
from carveout.bench.api import DATA_LABEL, BenchError, Progress, _no_progress
from carveout.bench.archive import tar_zstd, tool, untar_zstd
from carveout.bench.bundle import BundleRun, RecipientStorage, measure_bundle
from carveout.bench.clock import Best
from carveout.cells import init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.datasets import load_kuairec
from carveout.storage.pgcluster import DURABILITY, PgCluster, PgClusterError

BACKENDS = ("sqlite", "postgresql")
__all__ = ["BACKENDS", "DATA_LABEL", "BackupBenchConfig", "BackupBenchResult", "run_backup_bench"]


@dataclass(frozen=True)
class BackupBenchConfig:
    datasets: Path
    backends: tuple[str, ...] = BACKENDS
    seed: int = 7
    rounds: int = 1  # each measurement is the best of this many runs

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise BenchError(f"backends must be among {', '.join(BACKENDS)}, got {unknown}")
        if self.rounds < 1:
            raise BenchError("rounds must be at least 1")


@dataclass
class BackendRun:
    backend: str
    version: str = ""
    notes: str = ""
    skipped: str = ""
    data_bytes: int = 0  # the backup's logical bytes: database snapshot plus blob files
    stored_bytes: int = 0
    baseline_stored_bytes: int = 0
    backup: Best = field(default_factory=Best)
    baseline_backup: Best = field(default_factory=Best)
    restore: Best = field(default_factory=Best)
    baseline_restore: Best = field(default_factory=Best)
    timings: Timings = field(default_factory=Timings)  # of the fastest backup
    bundle: BundleRun | None = None

    @property
    def crypto_overhead(self) -> float:
        """Backup time over the same backup without encryption and chunk/item checksums."""
        t = self.timings
        rest = t.total_s - t.encrypt_s - t.checksum_s
        return t.total_s / rest if rest > 0 else 0.0


@dataclass
class BackupBenchResult:
    config: BackupBenchConfig
    runs: list[BackendRun]
    seconds: float = 0.0


def run_backup_bench(
    config: BackupBenchConfig, progress: Progress | None = None
) -> BackupBenchResult:
    report = progress or _no_progress
    started = time.perf_counter()
    runs: list[BackendRun] = []
    for backend in config.backends:
        with _storage(backend) as (storage, run):
            runs.append(run)
            if storage is not None:
                _measure(config, storage, run, report)
    return BackupBenchResult(config, runs, time.perf_counter() - started)


@contextlib.contextmanager
def _storage(backend: str) -> Iterator[tuple[str | None, BackendRun]]:
    if backend == "sqlite":
        yield "sqlite", BackendRun(backend, sqlite3.sqlite_version, "WAL, one file per cell")
        return
    try:
        server = PgCluster()
        server.start()
    except PgClusterError as exc:
        yield None, BackendRun(backend, skipped=f"skipped: {str(exc).splitlines()[0]}")
        return
    try:
        run = BackendRun(backend, server.version(), f"private local cluster, {DURABILITY}")
        yield server.url("carveout_bench"), run
    finally:
        server.stop()


def _measure(config: BackupBenchConfig, storage: str, run: BackendRun, report: Progress) -> None:
    step = f"{run.backend}"
    # Not "carveout-bench-*": the API bench test watches that pattern for its own leftovers.
    root = Path(tempfile.mkdtemp(prefix="carveout-backupbench-"))
    try:
        report(step, 0, 6, "loading KuaiRec")
        deployment = init_data_dir(root / "data", one_cell_policy(storage))
        load_kuairec(deployment, config.datasets, seed=config.seed)
        cell = deployment.cell("global")
        report(step, 1, 6, "baseline backup")
        work = root / "baseline"
        for _ in range(config.rounds):
            _empty(work)
            run.baseline_backup.time(lambda: _baseline_backup(storage, cell.root, work))
        run.baseline_stored_bytes = sum(f.stat().st_size for f in work.iterdir() if f.is_file())
        report(step, 2, 6, "carveout backup")
        best = None
        # Keep every round's backup: the fastest one is restored below.
        keep = config.rounds
        for _ in range(config.rounds):
            result = run.backup.time(lambda: run_backup(deployment, "global", keep=keep))
            if best is None or result.timings.total_s < best.timings.total_s:
                best = result
        assert best is not None
        run.timings = best.timings
        run.data_bytes = best.manifest.logical_bytes
        run.stored_bytes = best.manifest.stored_bytes
        report(step, 3, 6, "bundle export and import")
        run.bundle = measure_bundle(
            deployment, "global", root / "bundle", config.rounds, _recipient_storage(storage)
        )
        deployment.close()
        report(step, 4, 6, "baseline restore")
        restored = root / "restored"
        for _ in range(config.rounds):
            _empty(restored)
            run.baseline_restore.time(lambda: _baseline_restore(storage, work, restored))
        report(step, 5, 6, "carveout restore")
        backup_id = best.manifest.backup_id
        for _ in range(config.rounds):
            run.restore.time(
                lambda: restore_backup(
                    deployment.data_dir, deployment.policy, "global", backup_id, replace=True
                )
            )
        report(step, 6, 6, "done")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _recipient_storage(storage: str) -> RecipientStorage:
    """Where each round's import puts the recipient's new cell: SQLite, or a new database on
    the same PostgreSQL server (dropped afterwards)."""

    @contextlib.contextmanager
    def fresh(i: int) -> Iterator[str]:
        if storage == "sqlite":
            yield "sqlite"
            return
        name = f"carveout_bundle_{i}"
        try:
            yield with_database(storage, name)
        finally:
            drop_database(storage, name)

    return fresh


def _empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _baseline_backup(storage: str, cell_root: Path, work: Path) -> None:
    if storage == "sqlite":
        src = sqlite3.connect(cell_root / "cell.db")
        dst = sqlite3.connect(work / "cell.db")
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
            src.close()
        subprocess.run(  # noqa: S603 - fixed argv
            [tool("zstd"), "-3", "-q", "--rm", str(work / "cell.db")], check=True
        )
    else:
        subprocess.run(  # noqa: S603 - fixed argv
            [str(pg_tool("pg_dump")), "-Fc", "-f", str(work / "cell.dump"), libpq_url(storage)],
            check=True,
        )
    tar_zstd(cell_root / "blobs", work / "blobs.tar.zst")


def _baseline_restore(storage: str, work: Path, target: Path) -> None:
    if storage == "sqlite":
        subprocess.run(  # noqa: S603 - fixed argv
            [tool("zstd"), "-d", "-q", "-o", str(target / "cell.db"), str(work / "cell.db.zst")],
            check=True,
        )
    else:
        url = create_database(storage, f"baseline_{time.monotonic_ns()}")
        subprocess.run(  # noqa: S603 - fixed argv
            [str(pg_tool("pg_restore")), "--no-owner", "-d", url, str(work / "cell.dump")],
            check=True,
        )
    untar_zstd(work / "blobs.tar.zst", target)
