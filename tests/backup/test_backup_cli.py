"""`carveout backup run|verify|restore|list` as the main CLI mounts them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import typer
from backup_env import Env
from typer.testing import CliRunner

from carveout.cli.backup import backup_app
from carveout.cli.bench_backup import BENCH_BACKUP_HELP, bench_backup_command
from carveout.core import settings
from carveout.datasets import KUAIREC_FILES, missing

DATASETS = settings.datasets_dir()


def cli(*args: str) -> typer.testing.Result:
    app = typer.Typer()
    app.add_typer(backup_app, name="backup")
    return CliRunner().invoke(app, ["backup", *args])


def test_run_list_verify_restore(env: Env) -> None:
    d = ["--data-dir", str(env.data_dir)]
    before = env.fingerprint()
    env.deployment.close()  # the CLI is another process in real use: nothing held open here

    ran = cli("run", "--cell", "global", *d)
    assert ran.exit_code == 0, ran.output
    assert "written to site sg" in ran.output
    backup_id = ran.output.split()[1]

    listed = cli("list", *d)
    assert listed.exit_code == 0, listed.output
    assert backup_id in listed.output and "never" in listed.output

    verified = cli("verify", "--cell", "global", *d)  # the latest by default
    assert verified.exit_code == 0, verified.output
    assert f"backup {backup_id} of cell global verified" in verified.output
    assert "ok " in cli("list", "--cell", "global", *d).output

    refused = cli("restore", "--cell", "global", "--backup", backup_id, *d)
    assert refused.exit_code == 1
    assert "error: cell 'global' already exists" in refused.output
    restored = cli("restore", "--cell", "global", "--backup", backup_id, "--replace", *d)
    assert restored.exit_code == 0, restored.output
    assert env.fingerprint() == before


def test_errors_are_one_line_with_exit_code_1(env: Env) -> None:
    d = ["--data-dir", str(env.data_dir)]
    wrong_site = cli("run", "--cell", "global", "--site", "us", *d)
    assert wrong_site.exit_code == 1
    assert "error: the residency policy allows backups of cell 'global' only at site 'sg'" in (
        wrong_site.output
    )
    none = cli("verify", "--cell", "global", *d)
    assert none.exit_code == 1 and "has no backups at its backup site" in none.output
    unknown = cli("list", "--cell", "nope", *d)
    assert unknown.exit_code == 1 and "no cell named 'nope'" in unknown.output


@pytest.mark.skipif(bool(missing(DATASETS, KUAIREC_FILES)), reason=f"KuaiRec not in {DATASETS}")
def test_bench_backup_on_sqlite_writes_json_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A private temp folder: other benchmarks on the machine must not look like our leftovers.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    app = typer.Typer()
    bench = typer.Typer()
    bench.command("backup", help=BENCH_BACKUP_HELP)(bench_backup_command)
    app.add_typer(bench, name="bench")
    out = tmp_path / "backup.json"

    result = CliRunner().invoke(
        app, ["bench", "backup", "--backends", "sqlite", "--json", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert "carveout backup vs the raw tools" in result.output
    data = json.loads(out.read_text())
    assert data["data"] == "real KuaiRec data (CC BY-SA 4.0)"
    [run] = data["results"]
    assert [s["step"] for s in run["steps"]] == ["backup", "restore"]
    assert run["data_bytes"] > 0 and run["encryption_checksum_overhead"] >= 1.0
    assert list(private.iterdir()) == []
