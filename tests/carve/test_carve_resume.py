"""Resume and abort: a carve stopped at any point ends exact; an early abort leaves no trace."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from carving import MOVING

from carveout import carve
from carveout.carve import Phase
from carveout.cells import POLICY_FILE, Deployment
from carveout.core import CarveoutError
from carveout.storage import fingerprint


class Crash(Exception):
    pass


class CrashAfter:
    """A reporter that dies after n copy chunks, like a process killed mid-copy."""

    def __init__(self, chunks: int) -> None:
        self.left = chunks

    def step(self, phase: Phase) -> None:
        pass

    def advance(self, what: str, n: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise Crash(what)

    def say(self, message: str) -> None:
        pass


def test_copy_resumes_from_its_last_chunk(loaded: Deployment) -> None:
    spec = carve.start(loaded, MOVING, "na-anz")
    with pytest.raises(Crash):
        carve.run(loaded, spec, reporter=CrashAfter(chunks=20))
    assert carve.phases_done(carve.open_target(loaded, spec)) == ["prepare", "capture"]
    outcome = carve.run(loaded, carve.load_spec(loaded, "na-anz"))
    plan_rows = 2583 + 56 + 3898 + 1584 + 68980  # moving rows of the copied tables
    assert outcome.copy.resumed_tables == 1
    assert 0 < outcome.copy.rows < plan_rows  # the rest, not everything again
    assert outcome.verify is not None and outcome.verify.ok
    assert outcome.leaks is not None and outcome.leaks.leaks == 0


@pytest.mark.parametrize("through", [Phase.CAPTURE, Phase.COPY, Phase.CATCHUP])
def test_abort_before_cutover_leaves_the_source_as_it_was(
    loaded: Deployment, through: Phase
) -> None:
    source = loaded.cell("global")
    before = fingerprint(source.store, source.blobs)
    policy = (loaded.data_dir / POLICY_FILE).read_text()
    spec = carve.start(loaded, MOVING, "na-anz")
    carve.run(loaded, spec, through=through)
    carve.abort(loaded, spec)
    assert fingerprint(source.store, source.blobs).diff(before) == []
    assert (loaded.data_dir / POLICY_FILE).read_text() == policy
    assert not (loaded.data_dir / "cells" / "na-anz").exists()
    assert not (loaded.data_dir / "keys" / "na-anz").exists()  # no copy of J's keys left
    assert carve.in_progress(loaded) == []
    with source.store.connect() as conn:
        triggers = conn.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE type='trigger' AND name LIKE 'carve%'"
        )
        assert triggers.scalar_one() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM carve_changes").scalar_one() == 0
    # The same carve can then start afresh.
    assert carve.run(loaded, carve.start(loaded, MOVING, "na-anz")).leaks is not None


def test_abort_after_cutover_refuses_and_says_what_to_do(loaded: Deployment) -> None:
    spec = carve.start(loaded, MOVING, "na-anz")
    carve.run(loaded, spec, through=Phase.CUTOVER)
    with pytest.raises(CarveoutError, match=r"point of no return.*carve them back"):
        carve.abort(loaded, spec)
    assert loaded.cell_for("US").name == "na-anz"


def _carveout(data: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "carveout.cli.main", *args, "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 23, 37])
def test_sigkill_at_random_instants_then_resume_ends_exact(loaded: Deployment, seed: int) -> None:
    """Real SIGKILLs of the CLI at seeded random instants; each time `resume` picks up."""
    data = loaded.data_dir
    expected_rows = {}
    with loaded.cell("global").store.connect() as conn:
        for name in ("users", "videos", "events", "likes", "blobs"):
            expected_rows[name] = conn.exec_driver_sql(
                f"SELECT count(*) FROM {name} WHERE domicile IN ('US','CA','AU','NZ')"
            ).scalar_one()
    loaded.close()
    rng = random.Random(seed)
    proc = _carveout(data, "carve", "run", "-j", "US,CA,AU,NZ", "--to", "na-anz")
    kills = 0
    while True:
        time.sleep(rng.uniform(0.8, 3.0))  # interpreter start-up is ~0.7 s of this
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        started = (data / "carves" / "na-anz.json").is_file() or (
            data / "carves" / "finished" / "na-anz.json"
        ).is_file()
        # Killed before it recorded the carve: nothing to resume, so it starts again.
        args = (
            ("resume", "--to", "na-anz")
            if started
            else ("run", "-j", "US,CA,AU,NZ", "--to", "na-anz")
        )
        proc = _carveout(data, "carve", *args)
        if kills >= 4:
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert kills >= 1
    deployment = Deployment.open(data)
    try:
        target = deployment.cell("na-anz")
        with target.store.connect() as conn:
            for name, n in expected_rows.items():
                assert conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one() == n
        source = deployment.cell("global")
        with source.store.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM users WHERE domicile IN ('US','CA','AU','NZ')")
            ).scalar_one()
        assert left == 0
        assert carve.in_progress(deployment) == []
    finally:
        deployment.close()


def test_a_source_schema_change_mid_carve_is_refused(loaded: Deployment) -> None:
    spec = carve.start(loaded, MOVING, "na-anz")
    carve.run(loaded, spec, through=Phase.COPY)
    source = loaded.cell("global")
    with source.store.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE users ADD COLUMN nickname TEXT")
    with pytest.raises(carve.CarveFailed, match=r"tables changed mid-carve \(users\)"):
        carve.run(loaded, spec)
    # Nothing moved past the copy, and the carve can still be rolled back.
    assert carve.phases_done(carve.open_target(loaded, spec)) == ["prepare", "capture", "copy"]
    carve.abort(loaded, spec)
    assert loaded.cell_for("US").name == "global"


def test_a_source_that_goes_away_mid_copy_fails_loudly_then_resumes(
    loaded: Deployment, tmp_path: Path
) -> None:
    db = loaded.data_dir / "cells" / "global" / "cell.db"
    moved = tmp_path / "away.db"

    class PullTheDisk(CrashAfter):
        def advance(self, what: str, n: int) -> None:
            self.left -= 1
            if self.left == 0:
                loaded.cell("global").store.dispose()  # close pooled connections, as a restart
                db.rename(moved)

    spec = carve.start(loaded, MOVING, "na-anz")
    with pytest.raises(sa.exc.OperationalError, match="unable to open database file"):
        carve.run(loaded, spec, reporter=PullTheDisk(chunks=5))
    assert not db.exists()  # no empty stand-in was created
    moved.rename(db)
    outcome = carve.run(loaded, spec)
    assert outcome.verify is not None and outcome.verify.ok
    assert outcome.purge is not None and outcome.purge.remaining_rows == 0
