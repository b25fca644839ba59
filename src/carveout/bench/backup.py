"""`carveout bench backup`: backup and restore MB/s next to the raw tools, same data, same run.

For each backend a fresh one-cell deployment is loaded with the real KuaiRec data. The baseline
is what an operator would script instead: SQLite's online backup API (what `sqlite3 .backup`
calls) or `pg_dump -Fc`, with the blob folder through `tar | zstd`; restored with `zstd -d | tar
-x` (and `pg_restore`). carveout's backup adds per-table checksums, chunking, AES-GCM, sha256 per
chunk, a signed manifest and fsyncs; its restore checks all of them (and compares every table
on PostgreSQL).
The `s3` row backs a SQLite cell up to an S3 site on a private Ceph radosgw (bench/backup_s3.py);
its baseline uploads the SQLite baseline's files with boto3 and downloads them to restore.
The transfer bundle's export and import of US, CA, AU and NZ are measured on the same
deployment, next to `tar | zstd -3` of the same rows and blob files (see bench/bundle.py) and
next to the database's own tools moving the same rows (bench/backup_native.py).

KuaiRec is small (77,101 rows of US, CA, AU and NZ): `synthetic_users` adds the privacy
bench's synthetic population (seeded, calibrated on KuaiRec, labelled SYNTHETIC in the report)
to the same cell, to show which ratios are fixed costs (they shrink with the data) and which
are per row.
"""

from __future__ import annotations

import contextlib
import functools
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
from carveout.bench.api import DATA_LABEL, BenchError, Progress, no_progress
from carveout.bench.archive import tar_zstd, tool, untar_zstd
from carveout.bench.backup_s3 import NOTES, CephS3Error, S3Bench, s3_bench, unavailable
from carveout.bench.bundle import BundleRun, RecipientStorage, measure_bundle
from carveout.bench.clock import Best
from carveout.bench.privacy_calibration import read_calibration
from carveout.bench.privacy_population import build_population, read_clips
from carveout.bench.private_pg import private_cluster
from carveout.cells import init_data_dir
from carveout.cells.policy import one_cell_policy
from carveout.datasets import load_kuairec
from carveout.storage.pgcluster import PgCluster

BACKENDS = ("sqlite", "postgresql", "s3")
__all__ = ["BACKENDS", "DATA_LABEL", "BackupBenchConfig", "BackupBenchResult", "run_backup_bench"]


@dataclass(frozen=True)
class BackupBenchConfig:
    datasets: Path
    backends: tuple[str, ...] = BACKENDS
    seed: int = 7
    rounds: int = 1  # each measurement is the best of this many runs
    synthetic_users: int = 0  # synthetic users added beside KuaiRec's (0: the real data only)

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise BenchError(f"backends must be among {', '.join(BACKENDS)}, got {unknown}")
        if self.rounds < 1:
            raise BenchError("rounds must be at least 1")
        if self.synthetic_users < 0:
            raise BenchError(f"synthetic users must be 0 or more, got {self.synthetic_users}")

    @property
    def data_label(self) -> str:
        if not self.synthetic_users:
            return DATA_LABEL
        return (
            f"{DATA_LABEL} plus {self.synthetic_users:,} SYNTHETIC users (seeded; calibrated "
            "on KuaiRec, as the privacy bench's population)"
        )


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
    report = progress or no_progress
    started = time.perf_counter()
    runs: list[BackendRun] = []
    for backend in config.backends:
        # Not "carveout-bench-*": the API bench test watches that pattern for its own leftovers.
        root = Path(tempfile.mkdtemp(prefix="carveout-backupbench-"))
        try:
            with _storage(backend, root) as (storage, run, s3):
                runs.append(run)
                if storage is not None:
                    _measure(config, storage, run, report, root, s3)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return BackupBenchResult(config, runs, time.perf_counter() - started)


Storage = tuple[str | None, BackendRun, S3Bench | None]


@contextlib.contextmanager
def _storage(backend: str, root: Path) -> Iterator[Storage]:
    if backend == "sqlite":
        yield "sqlite", BackendRun(backend, sqlite3.sqlite_version, "WAL, one file per cell"), None
        return
    if backend == "s3":
        if unavailable():
            yield None, BackendRun(backend, skipped=unavailable()), None
            return
        with contextlib.ExitStack() as stack:
            try:
                s3 = stack.enter_context(s3_bench(root))
            except CephS3Error as exc:
                yield None, BackendRun(backend, skipped=f"skipped: {str(exc)[:200]}"), None
                return
            version = subprocess.run(  # noqa: S603 - fixed argv
                [tool("radosgw"), "--version"], capture_output=True, text=True, check=False
            ).stdout.split()
            ceph = version[2] if len(version) > 2 else "?"
            yield (
                "sqlite",
                BackendRun(backend, sqlite3.sqlite_version, NOTES.format(version=ceph)),
                s3,
            )
        return
    with private_cluster(PgCluster) as pg:
        run = BackendRun(backend, pg.version, pg.notes, pg.skipped)
        yield (pg.server.url("carveout_bench") if pg.server else None), run, None


def _measure(
    config: BackupBenchConfig,
    storage: str,
    run: BackendRun,
    report: Progress,
    root: Path,
    s3: S3Bench | None,
) -> None:
    step = f"{run.backend}"
    # The caller removes `root`.
    report(step, 0, 6, "loading KuaiRec")
    policy = s3.policy() if s3 is not None else one_cell_policy(storage)
    deployment = init_data_dir(root / "data", policy)
    load_kuairec(deployment, config.datasets, seed=config.seed)
    cell = deployment.cell("global")
    if config.synthetic_users:
        what = f"{config.synthetic_users:,} synthetic users"
        build_population(
            cell,
            read_calibration(config.datasets),
            read_clips(config.datasets),
            config.synthetic_users,
            config.seed,
            lambda _s, done, total: report(f"{step}: population", done, total, what),
        )
    report(step, 1, 6, "baseline backup")
    work = root / "baseline"
    for i in range(config.rounds):
        _empty(work)
        run.baseline_backup.time(
            functools.partial(_baseline_backup, storage, cell.root, work, s3, i)
        )
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
    if s3 is None:  # the bundle never touches a backup site: measured once, on local rows
        run.bundle = measure_bundle(
            deployment,
            "global",
            root / "bundle",
            config.rounds,
            _recipient_storage(storage),
            None if storage == "sqlite" else storage,
        )
    deployment.close()
    report(step, 4, 6, "baseline restore")
    restored = root / "restored"
    for _ in range(config.rounds):
        _empty(restored)
        run.baseline_restore.time(lambda: _baseline_restore(storage, work, restored, s3))
    report(step, 5, 6, "carveout restore")
    backup_id = best.manifest.backup_id
    for _ in range(config.rounds):
        run.restore.time(
            lambda: restore_backup(
                deployment.data_dir, deployment.policy, "global", backup_id, replace=True
            )
        )
    report(step, 6, 6, "done")


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


def _baseline_backup(
    storage: str, cell_root: Path, work: Path, s3: S3Bench | None = None, round_: int = 0
) -> None:
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
    if s3 is not None:
        s3.upload(work, f"round{round_}")


def _baseline_restore(storage: str, work: Path, target: Path, s3: S3Bench | None = None) -> None:
    if s3 is not None:  # from the bucket, as the restore of a real off-site copy would
        _empty(work)
        s3.download("round0", work)
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
