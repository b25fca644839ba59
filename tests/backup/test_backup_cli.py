"""`carveout backup run|verify|restore|list` as the main CLI mounts them."""

from __future__ import annotations

import typer
from backup_env import Env
from typer.testing import CliRunner

from carveout.cli.backup import backup_app


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
