"""`carveout bench backup`: the command; wired into `carveout bench` by cli/bench.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from carveout.cli.bench_common import DatasetsOpt, MarkdownOpt, bench_bars
from carveout.core import settings

DEFAULT_JSON = Path("benchmarks/results/backup.json")

BENCH_BACKUP_HELP = (
    "Backup, restore and transfer-bundle MB/s next to the raw tools on the same data, SQLite "
    "and PostgreSQL, and backup/restore to an S3 site (a private Ceph radosgw) next to the "
    "SQLite baseline's files uploaded and downloaded with boto3."
    "\n\n"
    "Each backend gets a fresh one-cell deployment loaded with the real KuaiRec data. The "
    "baseline is the online backup API (SQLite) or `pg_dump -Fc` (PostgreSQL) with the blobs "
    "through `tar | zstd -3`, restored with `zstd -d | tar -x` (and `pg_restore`). carveout's "
    "backup adds per-table checksums, AES-GCM, sha256 per chunk, a signed manifest and fsyncs; "
    "its restore checks them all (and compares every table on PostgreSQL). The transfer "
    "bundle of US, CA, AU and NZ (`carve export`, `carve import` into a new cell) is measured "
    "next to two baselines: `tar | zstd -3` of the same rows and blob files and its "
    "extraction (bytes moved only), and the database's own tools on the same subset (`psql "
    "\\copy (SELECT ... WHERE domicile IN J)`, `\\copy FROM` between pg_dump's pre- and "
    "post-data; the sqlite3 driver's SELECT and executemany into a new file). Ratios are the "
    "result."
)


def bench_backup_command(
    backends: Annotated[
        str,
        typer.Option(
            help="Comma-separated: sqlite, postgresql, s3 (a SQLite cell backed up to an S3 "
            "site on a private Ceph radosgw; skipped if Ceph is not installed)."
        ),
    ] = "sqlite,postgresql,s3",
    rounds: Annotated[
        int, typer.Option(min=1, help="Runs of each measurement; the fastest is reported.")
    ] = 1,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write the results as JSON.")
    ] = DEFAULT_JSON,
    datasets: DatasetsOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the jurisdiction assignment.")] = 7,
    markdown: MarkdownOpt = False,
    synthetic_users: Annotated[
        int,
        typer.Option(
            min=0,
            help="Synthetic users (seeded, calibrated on KuaiRec; labelled SYNTHETIC) added "
            "beside KuaiRec's in the measured cell, to measure at a larger scale. 0: the real "
            "data only.",
        ),
    ] = 0,
) -> None:
    from carveout.bench.backup import BackupBenchConfig, run_backup_bench
    from carveout.bench.backup_report import (
        backup_json,
        backup_markdown,
        backup_table,
        breakdown_lines,
    )
    from carveout.bench.report import machine, machine_line, write_json

    out = Console() if Console().is_terminal else Console(width=140)
    with bench_bars(refresh_per_second=4) as bars:
        config = BackupBenchConfig(
            datasets=settings.datasets_dir(datasets),
            backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
            seed=seed,
            rounds=rounds,
            synthetic_users=synthetic_users,
        )
        result = run_backup_bench(config, bars)
    info = machine()
    data = backup_json(result, info)
    write_json(json_path, data)
    out.print(backup_table(result))
    for line in breakdown_lines(result):
        out.print(line, highlight=False)
    out.print(f"machine: {machine_line(info)}", highlight=False)
    out.print(f"data: {data['data']} (total {result.seconds:.0f} s)", highlight=False)
    if markdown:
        out.print(backup_markdown(result), highlight=False, markup=False, soft_wrap=True)
    out.print(f"JSON: {json_path}", highlight=False)
