"""`carveout bench carve` runs end to end on SQLite (kills included) and on PostgreSQL, and cleans
up; no timings."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import typer
from test_bench_api import children
from typer.testing import CliRunner

from carveout.bench import carve_bench
from carveout.bench.carve_bench import CarveBenchConfig, run_carve_bench
from carveout.bench.carve_pg import leftovers
from carveout.bench.carve_report import carve_json
from carveout.cli.bench_carve import BENCH_CARVE_HELP, bench_carve_command
from carveout.core import settings
from carveout.datasets import KUAIREC_FILES, missing
from carveout.storage import PgCluster

# Each checks that it leaves no process or temp folder behind: `./dev test` runs the `serial`
# tests apart, after the parallel suite, so no other test's servers or folders are taken for
# leftovers.
SERIAL = pytest.mark.serial

DATASETS = settings.datasets_dir()
pytestmark = [
    SERIAL,
    pytest.mark.skipif(bool(missing(DATASETS, KUAIREC_FILES)), reason=f"KuaiRec not in {DATASETS}"),
]


def _app() -> typer.Typer:
    app = typer.Typer()
    bench = typer.Typer()
    bench.command("carve", help=BENCH_CARVE_HELP)(bench_carve_command)
    app.add_typer(bench, name="bench")
    return app


def _run(tmp_path: Path, private: Path, *extra: str) -> dict[str, Any]:
    """`private`: the private_tmp fixture's folder, empty again when the bench is done."""
    out = tmp_path / "carve.json"
    children_before = set(children(os.getpid()))
    args = ["bench", "carve", "--backends", "sqlite", "--rate", "60"]
    args += ["--writers", "1", "--before", "1", "--after", "0.5", "--json", str(out), *extra]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "under live writes" in result.output
    # The server, the client process and every carve attempt are gone, and so are the temp dirs.
    assert set(children(os.getpid())) <= children_before
    assert list(private.iterdir()) == []
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _check_common(run: dict[str, Any], baselines: list[str] | None = None) -> None:
    load = run["load"]
    ledger = run["ledger"]
    assert isinstance(load, dict) and isinstance(ledger, dict)
    assert load["requests"] > 0
    # Every write held and replayed, or applied: not one error (the server's own story if not).
    assert load["errors"] == 0, f"{load['first_error']}\nserver: {load['server_tracebacks']}"
    assert ledger["acked_rows"] > 0
    assert ledger["lost"] == 0 and ledger["duplicated"] == 0
    assert ledger["unacknowledged"] == 0 and ledger["stray"] == 0
    assert set(ledger["by_kind"]) == {"events", "likes", "comments", "follows", "like_events"}
    pause = run["pause"]
    assert isinstance(pause, dict)
    assert {"moving_in_fence", "staying_in_fence", "fence_windows_ms"} <= pause.keys()
    assert pause["fence_windows_ms"]
    names = [b["name"] for b in run["baselines"]]
    assert names == (baselines or ["SQLite backup API", "raw file copy"])


def _check_carve(carve: dict[str, Any]) -> None:
    assert set(carve["phase_seconds"]) == {
        "prepare",
        "capture",
        "copy",
        "catch-up",
        "cutover",
        "verify",
        "retrain",
        "purge",
    }
    assert carve["copy"]["rows"] > 0 and carve["verify"]["rows"] > 0
    assert carve["leaks"] == 0 and carve["verify"]["mismatches"] == 0
    # Verify's rate is its checksums'; the leak scan and the capture log's removal timed apart.
    verify = carve["verify"]
    parts = [verify[f"{p}_seconds"] for p in ("checksums", "capture_log_off", "leak_scan")]
    assert 0 < sum(parts) <= carve["phase_seconds"]["verify"] + 0.01
    assert verify["rows_per_s"] == round(verify["rows"] / parts[0], 1)
    assert verify["rows_per_s"] >= verify["rows_per_s_whole_phase"]
    assert carve["purge_rows_left_in_source"] == 0


def test_bench_carve_measures_a_live_carve_with_no_lost_writes(
    tmp_path: Path, private_tmp: Path
) -> None:
    data = _run(tmp_path, private_tmp)
    assert data["benchmark"] == "carve"
    assert data["data"] == "real KuaiRec data (CC BY-SA 4.0)"
    [sqlite] = data["runs"]
    _check_common(sqlite)
    _check_carve(sqlite["carve"])


@pytest.mark.postgres
def test_bench_carve_on_postgresql_replicates_with_no_lost_writes(
    pg_server: PgCluster, monkeypatch: pytest.MonkeyPatch, private_tmp: Path
) -> None:
    made: list[str] = []
    fresh = pg_server.fresh_url

    def fresh_url(prefix: str = "t") -> str:
        made.append(fresh(prefix))
        return made[-1]

    monkeypatch.setattr(pg_server, "fresh_url", fresh_url)
    servers: list[PgCluster] = []  # the target's, started by the bench
    real_started = carve_bench._started

    def started(stack: ExitStack) -> PgCluster:
        servers.append(real_started(stack))
        return servers[-1]

    monkeypatch.setattr(carve_bench, "_started", started)
    config = CarveBenchConfig(
        DATASETS,
        backends=("postgresql",),
        rate=60,
        writers_per_country=1,
        before=1,
        after=0.5,
    )
    children_before = set(children(os.getpid()))
    result = run_carve_bench(config, pg=pg_server)
    data = carve_json(result, {})
    [run] = data["runs"]
    _check_common(run, ["pg_dump | psql", "pg_dump | psql, J's rows only (COPY with WHERE)"])
    [dump, subset] = run["baselines"]
    assert dump["rows"] > 0 and dump["bytes"] > 0 and dump["dump_stream_bytes"] > 0
    # The subset baseline copies J's rows only, taken just before the count at the carve's start
    # (the load only adds rows).
    assert 0 < subset["rows"] <= run["rows_to_copy_at_start"] < dump["rows"]
    assert 0 < subset["bytes"] < dump["bytes"]
    carve = run["carve"]
    _check_carve(carve)
    # The subscription copied: the copy's rows are J's at the start, said so in the record.
    assert carve["copy"]["rows"] == run["rows_to_copy_at_start"]
    assert "subscription" in carve["copy"]["name"] and carve["copy"]["seconds_basis"]
    # Timed: the rows (initial copy, indexes built again), then blob files and keys apart.
    split = [carve["copy"][f"{part}_seconds"] for part in ("rows", "blob_files", "user_keys")]
    assert carve["copy"]["seconds"] == split[0] > 0
    # The rows' clock starts when capture begins making the subscription (it copies from then).
    assert carve["phase_seconds"]["copy"] < carve["copy"]["capture_start_to_copy_end_seconds"]
    assert sum(split) <= carve["copy"]["capture_start_to_copy_end_seconds"]
    assert carve["apply"]["method"] == "subscription streaming"
    # Latency by the phase a request started in: every phase of the run, both sides.
    by_phase = run["pause"]["by_phase"]
    assert set(by_phase) == set(carve["phase_seconds"])
    assert (
        sum(w["staying"]["requests"] for w in by_phase.values())
        <= (run["pause"]["staying_during_carve"]["requests"])
    )
    assert run["server"].startswith("PostgreSQL")
    # Source database (and its replication slot) dropped; the target's own server stopped and
    # its folder removed (private_tmp below); nothing left running.
    assert len(made) == 1
    assert leftovers(pg_server, made) == []
    assert "two private local servers" in run["server"]
    assert len(servers) == 1 and servers[0].root is None  # stopped, its folder removed
    assert set(children(os.getpid())) <= children_before
    assert list(private_tmp.iterdir()) == []


def test_bench_carve_with_kills_resumes_and_loses_nothing(
    tmp_path: Path, private_tmp: Path
) -> None:
    data = _run(
        tmp_path, private_tmp, "--backends", "sqlite", "--kill-at-random", "3", "--kill-window", "1"
    )
    [run] = data["runs"]
    _check_common(run)
    chaos = run["chaos"]
    assert 1 <= len(chaos["kills"]) <= 3
    assert chaos["attempts"] == len(chaos["kills"]) + 1
    work = chaos["copy_work"]
    assert work["rows_copied_total"] > 0
    assert set(chaos["phase_seconds_final_attempts"]) >= {"copy", "cutover", "purge"}
