"""Helpers the staff tests share: staff accounts with roles, purposes, the cells' access logs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from apiclient import Api

from carveout.accounts import staff
from carveout.cells import Cell
from carveout.datamap import TABLES

LOG = TABLES["staff_access_log"]
PURPOSE = "handling verified data-subject request, ticket 4711"


def cell_of(api: Api, country: str) -> Cell:
    return api.deployment.cell_for(country)


def make_staff(api: Api, country: str, *roles: str) -> dict[str, str]:
    """A fresh account in the cell serving `country`, holding `roles` there."""
    who = api.signup(country)
    for role in roles:
        staff.grant(cell_of(api, country), who["X-User"], role, granted_by="tests")
    return who


def h(who: dict[str, str], purpose: str | bytes | None = PURPOSE) -> dict[str, Any]:
    """Auth headers, with a stated purpose unless None."""
    out: dict[str, Any] = {"Authorization": who["Authorization"]}
    if purpose is not None:
        out["X-Access-Purpose"] = purpose
    return out


def log_rows(cell: Cell) -> list[dict[str, Any]]:
    with cell.store.connect() as conn:
        rows = conn.execute(sa.select(LOG).order_by(LOG.c.domicile, LOG.c.seq)).all()
    return [dict(r._mapping) for r in rows]


def all_logs(api: Api) -> dict[str, list[dict[str, Any]]]:
    return {c.name: log_rows(c) for c in api.deployment.cells()}
