"""Operators grant, revoke and list staff roles and verify the access log from the command line."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from apiclient import Api
from typer.testing import CliRunner

from api.staff_helpers import LOG, PURPOSE, cell_of
from carveout.accounts import User, get_user, read_account
from carveout.cli.main import app

runner = CliRunner()


def _cli(api: Api, *args: str) -> Any:
    return runner.invoke(app, [*args, "--data-dir", str(api.deployment.data_dir)])


def test_operators_grant_revoke_list_and_verify_from_the_cli(api: Api) -> None:
    cell = cell_of(api, "CA")
    officer, subject = api.signup("CA"), api.signup("CA")
    uid = officer["X-User"]
    base = ("--cell", cell.name, "--user", uid)
    r = _cli(api, "staff", "grant", *base, "--role", "privacy_officer", "--by", "ops-alice")
    assert r.exit_code == 0, r.output
    assert f"granted: privacy_officer to {uid} in cell {cell.name} (by ops-alice)" in r.output
    again = _cli(api, "staff", "grant", *base, "--role", "privacy_officer")
    assert again.exit_code == 0 and "already held" in again.output
    bad = _cli(api, "staff", "grant", *base, "--role", "admin")
    assert bad.exit_code == 1 and "unknown staff role 'admin'" in bad.output
    nobody = _cli(api, "staff", "grant", "--cell", cell.name, "--user", "nope", "--role", "auditor")
    assert nobody.exit_code == 1 and "no active account nope" in nobody.output
    listed = _cli(api, "staff", "list", "--cell", cell.name)
    assert listed.exit_code == 0 and f"{uid}  privacy_officer" in listed.output
    staff_user: User = get_user(cell, uid)
    for _ in range(3):
        read_account(cell, staff_user, subject["X-User"], PURPOSE)
    ok = _cli(api, "staff", "verify-log", "--cell", cell.name)
    assert ok.exit_code == 0, ok.output
    assert "1 chain(s) intact" in ok.output and "CA: 3 entries" in ok.output
    with cell.store.begin() as conn:
        conn.execute(sa.update(LOG).where(LOG.c.seq == 2).values(action="nothing"))
    broken = _cli(api, "staff", "verify-log", "--cell", cell.name)
    assert broken.exit_code == 1
    assert "BROKEN at CA entry 2" in broken.output and "(edited)" in broken.output
    r = _cli(api, "staff", "revoke", *base, "--role", "privacy_officer")
    assert r.exit_code == 0 and "revoked" in r.output
    r = _cli(api, "staff", "revoke", *base, "--role", "privacy_officer")
    assert r.exit_code == 0 and "nothing to revoke" in r.output
    assert "no staff roles" in _cli(api, "staff", "list", "--cell", cell.name).output
