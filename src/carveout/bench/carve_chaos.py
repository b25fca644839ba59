"""The carve as `carveout carve run|resume` subprocesses, SIGKILLed at seeded random instants.

A thread reads each attempt's STEP lines (which phase a kill hit); another watches the fence
file, so the write pause is measured as the clients saw it, kills mid-cutover included."""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carveout.bench import carve_pg
from carveout.carve.capture import carved_tables
from carveout.cells import FenceBoard

STEP = re.compile(r"STEP \d+: (\S+)")
FINISH_TIMEOUT_S = 600.0
FENCE_POLL_S = 0.001


@dataclass
class Kill:
    attempt: int
    phase: str  # the phase the attempt had last announced
    after_s: float  # since the attempt announced its first phase
    committed_rows: int | None  # the target's carved rows after the kill, while copy was due


@dataclass
class ChaosReport:
    requested: int
    kills: list[Kill] = field(default_factory=list)
    attempts: int = 0
    fence_windows: list[tuple[float, float]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # the target's carve_state at the end
    seconds: float = 0.0

    def copy_work(self, rows_at_start: int) -> dict[str, Any]:
        """Rows the copy committed across attempts against the rows it had to copy."""
        final = self.state.get("phase:copy", {}).get("rows", 0)
        in_copy = [k for k in self.kills if k.committed_rows is not None]
        before = max((k.committed_rows or 0 for k in in_copy), default=0)
        return {
            "rows_to_copy_at_start": rows_at_start,
            "rows_committed_by_killed_attempts": before,
            "rows_copied_by_final_attempt": final,
            "rows_copied_total": before + final,
            "kills_during_copy": len(in_copy),
            # A killed chunk's transaction rolls back: at most one chunk per kill is redone.
            "uncommitted_rows_redone_at_most": len(in_copy) * 2000,
        }


class _Attempt:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.phase = ""
        self.first_step = threading.Event()
        self.first_step_at = 0.0
        self.tail: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.tail = [*self.tail[-40:], line]
            if m := STEP.search(line):
                self.phase = m.group(1)
                if not self.first_step.is_set():
                    self.first_step_at = time.monotonic()
                    self.first_step.set()
        self.first_step.set()  # the process ended: nobody waits for a step any more

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)


class _FenceWatch:
    """Polls the fence file: intervals during which moving writes were held."""

    def __init__(self, data_dir: Path) -> None:
        self.path = FenceBoard(data_dir).path
        self.windows: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raised: float | None = None
        while not self.stop.is_set():
            up = self.path.exists()
            now = time.monotonic()
            if up and raised is None:
                raised = now
            elif not up and raised is not None:
                self.windows.append((raised, now))
                raised = None
            time.sleep(FENCE_POLL_S)
        if raised is not None:
            self.windows.append((raised, time.monotonic()))

    def __enter__(self) -> _FenceWatch:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def _target_rows(data_dir: Path, target: str, storage: str) -> int | None:
    """The target's carved rows, or None once the copy is done (apply changes them then)."""
    if storage != "sqlite":
        return carve_pg.target_rows(storage)
    db = data_dir / "cells" / target / "cell.db"
    if not db.is_file():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        done = conn.execute("SELECT 1 FROM carve_state WHERE key = 'phase:copy'").fetchone()
        if done:
            return None
        tables = [t.name for t in carved_tables()]
        return sum(int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables)
    except sqlite3.OperationalError:  # killed before the schema was there
        return 0
    finally:
        conn.close()


def read_state(data_dir: Path, target: str, storage: str = "sqlite") -> dict[str, Any]:
    if storage != "sqlite":
        return carve_pg.read_state(storage)
    db = data_dir / "cells" / target / "cell.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM carve_state")}
    finally:
        conn.close()


def run_with_kills(
    data_dir: Path,
    jurisdictions: tuple[str, ...],
    target: str,
    kills: int,
    seed: int,
    kill_max_s: float,
    storage: str = "sqlite",
    on_attempt: Callable[[int, int, str], None] = lambda _a, _k, _p: None,
) -> ChaosReport:
    """Run the carve (its target on `storage`), SIGKILL it `kills` times at seeded instants,
    resume each time, finish."""
    rng = random.Random(seed)  # noqa: S311 - reproducible chaos, not secrets
    cli = [sys.executable, "-m", "carveout.cli.main", "carve"]
    tail = ["--data-dir", str(data_dir)]
    report = ChaosReport(requested=kills)
    began = time.monotonic()
    with _FenceWatch(data_dir) as fences:
        first = [*cli, "run", "-j", ",".join(jurisdictions), "--to", target, "--storage", storage]
        attempt = _Attempt([*first, *tail])
        report.attempts = 1
        try:
            while len(report.kills) < kills:
                attempt.first_step.wait(FINISH_TIMEOUT_S)
                delay = rng.uniform(0.0, kill_max_s)
                wake = attempt.first_step_at + delay
                while attempt.proc.poll() is None and time.monotonic() < wake:
                    time.sleep(0.002)
                if attempt.proc.poll() is not None:
                    break  # the carve finished before this kill was due
                attempt.kill()
                report.kills.append(
                    Kill(
                        attempt=report.attempts,
                        phase=attempt.phase or "start-up",
                        after_s=round(time.monotonic() - attempt.first_step_at, 3),
                        committed_rows=_target_rows(data_dir, target, storage),
                    )
                )
                on_attempt(report.attempts, len(report.kills), attempt.phase)
                attempt = _Attempt([*cli, "resume", "--to", target, *tail])
                report.attempts += 1
            try:
                attempt.proc.wait(FINISH_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                attempt.kill()
            attempt.reader.join(5)
            if attempt.proc.returncode != 0:
                raise RuntimeError(
                    f"carve attempt {report.attempts} exited with {attempt.proc.returncode}:\n"
                    + "\n".join(attempt.tail[-20:])
                )
        finally:
            attempt.kill()
    report.fence_windows = fences.windows
    report.state = read_state(data_dir, target, storage)
    report.seconds = time.monotonic() - began
    return report
