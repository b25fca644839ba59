"""The staff access log's hash chains: tampering is found, concurrent reads never fork a chain,
and a read whose entry cannot be written (a carve's seal) does not happen."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apiclient import Api

from api.staff_helpers import LOG, PURPOSE, cell_of, h, log_rows, make_staff
from carveout.accounts import get_user, read_account, verify_chain
from carveout.accounts.access_chain import entry_hash
from carveout.carve.capture import install_seal, remove_triggers
from carveout.cells import Cell

PER_PROCESS = 40


def _reads(api: Api, n: int) -> tuple[Cell, dict[str, str], list[str]]:
    """n officer reads alternating between a CA and a GB subject: two chains in one cell."""
    cell = cell_of(api, "CA")
    officer = make_staff(api, "CA", "privacy_officer")
    subjects = [api.signup("CA")["X-User"], api.signup("GB")["X-User"]]
    staff_user = get_user(cell, officer["X-User"])
    for i in range(n):
        read_account(cell, staff_user, subjects[i % 2], PURPOSE)
    return cell, officer, subjects


def _problems(cell: Cell) -> list[tuple[str, int, str]]:
    return [(p.domicile, p.seq, p.what) for p in verify_chain(cell.store)]


def _exec(cell: Cell, stmt: Any) -> None:
    with cell.store.begin() as conn:
        conn.execute(stmt)


def test_verification_finds_an_edited_deleted_reordered_or_inserted_entry(api: Api) -> None:
    cell, _officer, _subjects = _reads(api, 8)  # CA 1-4, GB 1-4
    assert verify_chain(cell.store) == []
    ca = {e["seq"]: e for e in log_rows(cell) if e["domicile"] == "CA"}
    at = sa.and_(LOG.c.domicile == "CA", LOG.c.seq == 2)

    # Edited: the purpose of entry 2.
    _exec(cell, sa.update(LOG).where(at).values(purpose="just curious"))
    assert _problems(cell) == [("CA", 2, "its hash does not match its contents (edited)")]
    _exec(cell, sa.update(LOG).where(at).values(purpose=ca[2]["purpose"]))
    assert verify_chain(cell.store) == []

    # Deleted: entry 2 goes; entry 3 names the gap and no longer links.
    _exec(cell, sa.delete(LOG).where(at))
    found = _problems(cell)
    assert [(d, s) for d, s, _ in found] == [("CA", 3), ("CA", 3)]
    assert "missing (2)" in found[0][2] and "prev_hash" in found[1][2]
    _exec(cell, sa.insert(LOG).values(**ca[2]))
    assert verify_chain(cell.store) == []

    # Reordered: entries 2 and 3 swap places.
    def move(seq: int, to: int) -> None:
        _exec(cell, sa.update(LOG).where(LOG.c.domicile == "CA", LOG.c.seq == seq).values(seq=to))

    move(2, -1), move(3, 2), move(-1, 3)
    assert {(d, s) for d, s, _ in _problems(cell)} == {("CA", 2), ("CA", 3), ("CA", 4)}
    move(2, -1), move(3, 2), move(-1, 3)
    assert verify_chain(cell.store) == []

    # Inserted: a forged entry 3 that links correctly to entry 2 (its hash recomputed), the
    # later entries shifted up: the old entry 3 does not link to it, and their positions are
    # hashed, so the shifted entries no longer match either.
    for seq in (4, 3):
        move(seq, seq + 1)
    forged = {**ca[3], "id": "forged", "purpose": "cover story"}
    forged["hash"] = entry_hash(forged["prev_hash"], forged)
    _exec(cell, sa.insert(LOG).values(**forged))
    found = _problems(cell)
    assert found[0][:2] == ("CA", 4) and "prev_hash" in found[0][2]
    assert {(d, s) for d, s, _ in found} == {("CA", 4), ("CA", 5)}
    assert {p.domicile for p in verify_chain(cell.store)} == {"CA"}  # GB's chain is whole


def test_concurrent_reads_do_not_fork_the_chain(api: Api, backend: str, tmp_path: Path) -> None:
    cell, officer, subjects = _reads(api, 2)
    staff_user = get_user(cell, officer["X-User"])
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def reader(k: int) -> None:
        start.wait()
        try:
            for i in range(8):
                read_account(cell, staff_user, subjects[(i + k) % 2], f"{PURPOSE} ({k}.{i})")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = 2 + 6 * 8
    if backend == "sqlite":
        # Other processes on the same cell file, released together once all have started:
        # SQLite's write lock serialises them too.
        script = (
            "import sys, time\n"
            "from pathlib import Path\n"
            "from carveout.accounts import get_user, read_account\n"
            "from carveout.cells import Deployment\n"
            "d = Deployment.open(Path(sys.argv[1]))\n"
            "cell = d.cell_for('CA')\n"
            "me = get_user(cell, sys.argv[2])\n"
            "gate = Path(sys.argv[3])\n"
            "(gate / sys.argv[4]).touch()\n"
            "while not (gate / 'go').exists():\n"
            "    time.sleep(0.01)\n"
            "for i in range(PER_PROCESS):\n"
            "    read_account(cell, me, sys.argv[5 + i % 2], 'concurrent audit')\n"
            "d.close()\n"
        ).replace("PER_PROCESS", str(PER_PROCESS))
        gate = tmp_path / "gate"
        gate.mkdir()
        args = [str(api.deployment.data_dir), officer["X-User"], str(gate)]
        procs = [
            subprocess.Popen([sys.executable, "-c", script, *args, f"ready-{k}", *subjects])
            for k in range(3)
        ]
        while len(list(gate.glob("ready-*"))) < 3 and all(p.poll() is None for p in procs):
            time.sleep(0.01)
        (gate / "go").touch()
        assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
        expected += 3 * PER_PROCESS
    rows = log_rows(cell)
    assert len(rows) == expected
    for domicile in ("CA", "GB"):
        seqs = [e["seq"] for e in rows if e["domicile"] == domicile]
        assert seqs == list(range(1, expected // 2 + 1))
    assert verify_chain(cell.store) == []


def test_a_read_whose_entry_meets_a_carve_seal_is_refused_unread(api: Api) -> None:
    cell = cell_of(api, "CA")
    officer = make_staff(api, "CA", "privacy_officer")
    ca, gb = api.signup("CA"), api.signup("GB")
    with cell.store.begin() as conn:
        install_seal(conn, ("GB",), "elsewhere")  # GB is in a carve's cutover
    try:
        r = api.client.get(f"/v1/staff/users/{gb['X-User']}", headers=h(officer))
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert log_rows(cell) == []
        # Other jurisdictions' chains are not held up.
        assert api.client.get(f"/v1/staff/users/{ca['X-User']}", headers=h(officer)).is_success
    finally:
        with cell.store.begin() as conn:
            remove_triggers(conn, capture=False, seal=True)
    assert api.client.get(f"/v1/staff/users/{gb['X-User']}", headers=h(officer)).is_success
    assert [e["domicile"] for e in log_rows(cell)] == ["CA", "GB"]
