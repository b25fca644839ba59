"""Erasure by CLI, killed at random instants and resumed; retention; the byte-level scan."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from carveout import events, social
from carveout.accounts import NewUser, User, create_user
from carveout.cells import Cell, Deployment, init_data_dir
from carveout.cli.main import app
from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from carveout.privacy.exports import export_dir
from carveout.privacy.retention import DAY_MS, enforce

REQUESTS = TABLES["privacy_requests"]


def _user(cell: Cell, n: int, country: str = "CA") -> User:
    return create_user(
        cell,
        NewUser(f"zq{n}_ctl", f"Zq Person {n}", f"zq{n}.ctl@example.org", "pw" * 6, 1990, country),
    )


def _video(cell: Cell, creator: User) -> str:
    vid = new_id()
    with cell.store.begin() as conn:
        conn.execute(
            sa.insert(TABLES["videos"]),
            [
                {
                    "id": vid,
                    "domicile": creator.domicile,
                    "creator_id": creator.id,
                    "caption": "",
                    "hashtags": "[]",
                    "category": "pets",
                    "duration_ms": 10_000,
                    "width": 64,
                    "height": 64,
                    "blob_id": new_id(),
                    "status": "published",
                    "external_ref": None,
                    "created_at": now_ms(),
                }
            ],
        )
    return vid


def _heavy(tmp: Path, seed: int) -> tuple[Path, str, dict[str, int]]:
    """A cell with a user who watched a lot and commented a lot; returns their id and counts."""
    data = tmp / f"data{seed}"
    deployment = init_data_dir(data)
    cell = deployment.cell("global")
    creator = _user(cell, 0, "GB")
    vids = [_video(cell, creator) for _ in range(20)]
    heavy = _user(cell, 1)
    watches = [
        events.EventIn(vids[i % 20], events.EventKind.WATCH, 1000 + i, None) for i in range(4000)
    ]
    for start in range(0, len(watches), 500):
        events.record(cell.store, heavy, watches[start : start + 500])
    for i in range(300):
        social.add_comment(cell, heavy, vids[i % 20], f"comment {i}")
    counts = {"events": 4000 + 300, "comments": 300}
    deployment.close()
    return data, heavy.id, counts


def _cli(data: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "carveout.cli.main", "privacy", *args, "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _request_state(cell: Cell, user_id: str) -> str | None:
    with cell.store.connect() as conn:
        return conn.execute(
            sa.select(REQUESTS.c.status).where(
                REQUESTS.c.user_id == user_id, REQUESTS.c.kind == "erasure"
            )
        ).scalar()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_erasure_killed_at_a_random_instant_resumes_to_an_exact_receipt(
    tmp_path: Path, seed: int
) -> None:
    data, uid, counts = _heavy(tmp_path, seed)
    proc = _cli(data, "erase", "--cell", "global", "--user", uid, "--purpose", "verified request")
    deployment = Deployment.open(data)
    cell = deployment.cell("global")
    try:
        deadline = time.monotonic() + 120
        while _request_state(cell, uid) is None and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        # The erasure itself takes some tens of ms here: kill within that window (a kill after
        # it finished is harmless and checked the same way).
        time.sleep(random.Random(seed).uniform(0, 0.06))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        resumed = _cli(data, "resume")
        _out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err.decode()
        assert _request_state(cell, uid) == "done"
        with cell.store.connect() as conn:
            receipt = json.loads(
                conn.execute(
                    sa.select(REQUESTS.c.receipt).where(REQUESTS.c.user_id == uid)
                ).scalar_one()
            )
            left = conn.execute(
                sa.select(sa.func.count()).where(TABLES["events"].c.user_id == uid)
            ).scalar_one()
        lines = {line["store"]: line["records"] for line in receipt["stores"]}
        assert lines["database: events"] == counts["events"]
        assert lines["database: comments"] == counts["comments"]
        assert lines["key store"] == 1 and lines["database: users"] == 1
        assert left == 0
    finally:
        deployment.close()


def _erase_args(data: Path, user_id: str, purpose: str) -> list[str]:
    return [
        "privacy",
        "erase",
        "--cell",
        "global",
        "--user",
        user_id,
        "--purpose",
        purpose,
        "--data-dir",
        str(data),
    ]


def test_cli_scan_finds_what_is_there_and_passes_after_erasure(tmp_path: Path) -> None:
    data = tmp_path / "data"
    deployment = init_data_dir(data)
    cell = deployment.cell("global")
    user = _user(cell, 7)
    export_dir(cell).mkdir(parents=True)
    (export_dir(cell) / "leftover.txt").write_text(f"note about {user.email}")
    deployment.close()
    runner = CliRunner()
    args = ["privacy", "scan", "--cell", "global", "--data-dir", str(data)]
    found = runner.invoke(app, [*args, user.email, user.handle])
    assert found.exit_code == 1 and "leftover.txt" in found.output  # the planted copy
    (export_dir(cell) / "leftover.txt").unlink()
    erased = runner.invoke(app, _erase_args(data, user.id, "ticket 7"))
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["subject_id"] == user.id
    clean = runner.invoke(app, [*args, user.email, user.handle, user.display_name])
    assert clean.exit_code == 0, clean.output
    again = runner.invoke(app, _erase_args(data, user.id, "ticket 7"))
    assert again.exit_code == 1 and "already erased" in again.output
    blank = runner.invoke(app, _erase_args(data, user.id, " "))
    assert blank.exit_code == 1 and "--purpose" in blank.output


def test_retention_deletes_what_the_data_map_says_has_expired(tmp_path: Path) -> None:
    deployment = init_data_dir(tmp_path / "data")
    cell = deployment.cell("global")
    creator = _user(cell, 0, "GB")
    vid = _video(cell, creator)
    viewer = _user(cell, 1)
    now = now_ms()
    old = now - 400 * DAY_MS
    events.record(cell.store, viewer, [events.EventIn(vid, events.EventKind.WATCH, 5000, None)])
    ev = TABLES["events"]
    with cell.store.begin() as conn:
        conn.execute(
            sa.insert(ev),
            [
                {
                    "id": new_id(),
                    "domicile": "CA",
                    "user_id": viewer.id,
                    "video_id": vid,
                    "kind": "watch",
                    "watched_ms": 100,
                    "created_at": old + i,
                }
                for i in range(7)
            ],
        )
        conn.execute(
            sa.insert(TABLES["sessions"]),
            [
                {
                    "id": new_id(),
                    "domicile": "CA",
                    "user_id": viewer.id,
                    "token_hash": f"{i:064x}",
                    "created_at": old,
                    "expires_at": expires,
                }
                for i, expires in enumerate((now - 31 * DAY_MS, now - 29 * DAY_MS, now + DAY_MS))
            ],
        )
    report = enforce(cell, now)
    assert report.deleted["events"] == 7 and report.deleted["sessions"] == 1
    with cell.store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ev)).scalar_one() == 1
    assert enforce(cell, now).deleted == {"sessions": 0, "events": 0}
    deployment.close()
