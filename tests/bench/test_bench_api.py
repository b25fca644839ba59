"""`carveout bench api` runs end to end on SQLite and cleans up after itself; no timings checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from carveout.cli.bench import bench_app
from carveout.core import settings
from carveout.datasets import KUAIREC_FILES, missing
from carveout.storage import PgClusterError

# Each checks that it leaves no process or temp folder behind: `./dev test` runs the `serial`
# tests apart, after the parallel suite, so no other test's servers or folders are taken for
# leftovers.
SERIAL = pytest.mark.serial
pytestmark = SERIAL

DATASETS = settings.datasets_dir()


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(bool(missing(DATASETS, KUAIREC_FILES)), reason=f"KuaiRec not in {DATASETS}")
def test_bench_api_on_sqlite_writes_json_and_leaves_nothing_running(
    tmp_path: Path, private_tmp: Path
) -> None:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")  # as the main CLI mounts it
    out = tmp_path / "api.json"
    children_before = set(children(os.getpid()))

    args = ["bench", "api", "--backends", "sqlite", "--seconds", "0.5", "--warmup", "0.1"]
    args += ["--users", "2", "--history", "5", "--batch", "10", "--json", str(out)]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert "carveout API vs a trivial FastAPI endpoint" in result.output
    data = json.loads(out.read_text())
    assert data["benchmark"] == "api"
    assert data["data"] == "real KuaiRec data (CC BY-SA 4.0)"
    assert {"cpu", "cores", "ram_gib", "python", "sqlite", "postgresql"} <= data["machine"].keys()
    assert data["parameters"]["batch"] == 10
    [backend] = data["backends"]
    assert backend["name"] == "sqlite" and backend["skipped"] is None
    assert backend["data"]["videos"] > 10_000 and backend["data"]["watch_events"] > 90_000
    assert [(r["backend"], r["scenario"]) for r in data["results"]] == [
        ("sqlite", "feed"),
        ("sqlite", "ingest"),
    ]
    for r in data["results"]:
        for side in ("carveout", "baseline"):
            m = r[side]
            assert m["requests"] > 0 and m["errors"] == 0, m
            assert m["requests_per_s"] > 0 and 0 < m["p50_ms"] <= m["p99_ms"]
        assert r["ratio"]["throughput"] > 0
    ingest = data["results"][1]
    assert ingest["carveout"]["items_per_s"] == pytest.approx(
        10 * ingest["carveout"]["requests_per_s"], rel=0.01
    )

    assert set(children(os.getpid())) <= children_before, "a server process outlived the bench"
    assert list(private_tmp.iterdir()) == [], "the bench left a temp dir behind"


def test_bench_api_rejects_an_unknown_backend(tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")
    result = CliRunner().invoke(
        app, ["bench", "api", "--backends", "mysql", "--json", str(tmp_path / "x.json")]
    )
    assert result.exit_code == 1
    assert "backends must be among sqlite, postgresql" in result.output
    assert not (tmp_path / "x.json").exists()


def test_bench_api_reports_postgresql_skipped_when_it_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(**_settings: str) -> None:
        raise PgClusterError("PostgreSQL server binaries not found (test)")

    monkeypatch.setattr("carveout.bench.api.PgCluster", unavailable)
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")
    out = tmp_path / "api.json"
    result = CliRunner().invoke(
        app, ["bench", "api", "--backends", "postgresql", "--json", str(out)]
    )

    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["results"] == []
    [backend] = data["backends"]
    assert backend["name"] == "postgresql"
    assert "binaries not found" in backend["skipped"]
