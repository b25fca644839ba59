"""`carveout bench backup` runs end to end (backup, restore, transfer bundle) on SQLite and on
PostgreSQL, writes its JSON and cleans up; no timings are checked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from test_bench_api import children
from typer.testing import CliRunner

from carveout.bench.api import BenchError
from carveout.bench.backup import BackupBenchConfig
from carveout.cli.bench_backup import BENCH_BACKUP_HELP, bench_backup_command
from carveout.core import settings
from carveout.datasets import KUAIREC_FILES, missing

DATASETS = settings.datasets_dir()
# Serial: each checks that it leaves no temp folder or process behind (see test_bench_carve).
pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(bool(missing(DATASETS, KUAIREC_FILES)), reason=f"KuaiRec not in {DATASETS}"),
]
STEPS = [
    "backup",
    "restore",
    "bundle export",
    "bundle export (db tools)",
    "bundle import",
    "bundle import (db tools)",
]


def _run(tmp_path: Path, private: Path, backends: str, *extra: str) -> dict[str, Any]:
    """`private`: the private_tmp fixture's folder, empty again when the bench is done."""
    app = typer.Typer()
    bench = typer.Typer()
    bench.command("backup", help=BENCH_BACKUP_HELP)(bench_backup_command)
    app.add_typer(bench, name="bench")
    out = tmp_path / "backup.json"
    procs = set(children(os.getpid()))

    result = CliRunner().invoke(
        app,
        ["bench", "backup", "--backends", backends, "--json", str(out), "--markdown", *extra],
    )

    assert result.exit_code == 0, result.output
    assert "carveout backup vs the raw tools" in result.output
    assert "| sqlite | bundle import |" in result.output or backends != "sqlite"
    assert list(private.iterdir()) == []
    assert set(children(os.getpid())) <= procs  # pg_dump, zstd, tar, the server: all gone
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["data"].startswith("real KuaiRec data (CC BY-SA 4.0)")
    assert data["parameters"]["bundle_jurisdictions"] == "US,CA,AU,NZ"
    return data


def _check(run: dict[str, Any]) -> None:
    assert [s["step"] for s in run["steps"]] == STEPS
    for step in run["steps"]:
        for side in ("carveout", "baseline"):
            assert step[side]["seconds"] > 0 and step[side]["cpu_seconds"] > 0, step
        assert step["ratio"] > 0 and step["cpu_ratio"] > 0
    assert run["data_bytes"] > 0 and run["encryption_checksum_overhead"] >= 1.0
    seconds = run["backup_seconds"]
    assert seconds["table_checks_s"] > 0 and seconds["write_out_s"] > 0
    bundle = run["bundle"]
    # The baseline archives exactly what the bundle carries: J's rows and their blob files.
    assert bundle["rows"] > 0 and bundle["blobs"] > 0
    assert run["steps"][2]["data_bytes"] == bundle["data_bytes"] > 0
    assert bundle["stored_bytes"] > 0 and bundle["baseline_stored_bytes"] > 0
    assert bundle["native_stored_bytes"] > 0
    # Both baselines of each bundle step are measured on the same bytes.
    assert {s["data_bytes"] for s in run["steps"][2:]} == {bundle["data_bytes"]}


def test_bench_backup_on_sqlite_with_synthetic_users(tmp_path: Path, private_tmp: Path) -> None:
    """The SQLite row on KuaiRec plus a synthetic population, labelled as such (the PostgreSQL
    test below runs on the real data alone)."""
    data = _run(tmp_path, private_tmp, "sqlite", "--synthetic-users", "60")
    assert "plus 60 SYNTHETIC users" in data["data"]
    assert data["parameters"]["synthetic_users"] == 60
    [run] = data["results"]
    assert run["backend"] == "sqlite"
    _check(run)


def test_a_negative_number_of_synthetic_users_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="synthetic users must be 0 or more, got -1"):
        BackupBenchConfig(datasets=tmp_path, synthetic_users=-1)


@pytest.mark.postgres
def test_bench_backup_on_postgresql(tmp_path: Path, private_tmp: Path) -> None:
    data = _run(tmp_path, private_tmp, "postgresql")
    assert data["data"] == "real KuaiRec data (CC BY-SA 4.0)"
    assert data["parameters"]["synthetic_users"] == 0
    [run] = data["results"]
    assert run["backend"] == "postgresql" and "skipped" not in run, run
    _check(run)


@pytest.mark.s3
def test_bench_backup_on_an_s3_site(tmp_path: Path, private_tmp: Path) -> None:
    """The s3 row: backup and restore through a bucket of a private Ceph radosgw it starts and
    stops itself; the baseline uploads and downloads the same archive through the same bucket."""
    [run] = _run(tmp_path, private_tmp, "s3")["results"]
    assert run["backend"] == "s3" and "skipped" not in run, run
    assert [s["step"] for s in run["steps"]][:2] == ["backup", "restore"]
    for step in run["steps"]:
        for side in ("carveout", "baseline"):
            assert step[side]["seconds"] > 0, step
        assert step["ratio"] > 0
    assert run["data_bytes"] > 0
