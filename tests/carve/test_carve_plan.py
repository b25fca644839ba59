"""STEP 1 and refusals: the plan is deterministic, writes nothing; bad carves are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from carving import MOVING

from carveout import carve
from carveout.cells import Deployment
from carveout.core import Conflict, InvalidInput
from carveout.storage import fingerprint

FIXTURE = Path(__file__).parent / "fixtures" / "plan_us_ca_au_nz.txt"


def test_plan_text_matches_the_fixture_and_writes_nothing(loaded: Deployment) -> None:
    cell = loaded.cell("global")
    before = fingerprint(cell.store, cell.blobs)
    text = carve.render_plan(carve.make_plan(loaded, "US,CA,AU,NZ", "na-anz"))
    assert text == FIXTURE.read_text()
    # Order and case of the codes do not matter.
    assert carve.render_plan(carve.make_plan(loaded, "nz,au,ca,us", "na-anz")) == text
    assert fingerprint(cell.store, cell.blobs).diff(before) == []
    assert not (loaded.data_dir / "cells" / "na-anz").exists()


def test_plan_counts_add_up(loaded: Deployment) -> None:
    plan = carve.make_plan(loaded, MOVING, "na-anz")
    cell = loaded.cell("global")
    with cell.store.connect() as conn:
        for t in plan.tables:
            total = conn.exec_driver_sql(f"SELECT count(*) FROM {t.name}").scalar_one()
            assert t.moving_rows + t.staying_rows == total
    users = next(t for t in plan.tables if t.name == "users")
    assert users.moving_rows > 0 and users.staying_rows > 0
    assert {r.direction for r in plan.cross_refs} == {"outbound", "inbound"}


@pytest.mark.parametrize(
    ("codes", "target", "error", "needle"),
    [
        ("US,XX", "na-anz", InvalidInput, "unknown jurisdiction"),
        ("", "na-anz", InvalidInput, "no jurisdiction"),
        ("US", "global", Conflict, "already exists"),
        ("US", "Bad Name", InvalidInput, "target cell name"),
    ],
)
def test_bad_carves_are_refused_and_change_nothing(
    loaded: Deployment, codes: str, target: str, error: type[Exception], needle: str
) -> None:
    cell = loaded.cell("global")
    before = fingerprint(cell.store, cell.blobs)
    with pytest.raises(error, match=needle):
        carve.start(loaded, codes, target)
    assert fingerprint(cell.store, cell.blobs).diff(before) == []
    assert carve.in_progress(loaded) == []


def test_second_carve_of_the_same_source_is_refused(loaded: Deployment) -> None:
    carve.start(loaded, "US,CA", "na")
    with pytest.raises(Conflict, match="in progress"):
        carve.start(loaded, "CA,AU", "other")
    with pytest.raises(Conflict, match="in progress"):
        carve.start(loaded, "GB", "uk")


def test_jurisdictions_of_two_cells_are_refused(loaded: Deployment) -> None:
    spec = carve.start(loaded, "US", "us-cell")
    carve.run(loaded, spec)
    with pytest.raises(InvalidInput, match="several cells"):
        carve.start(loaded, "US,GB", "mixed")
