"""The carve's own DDL on a serving PostgreSQL cell (triggers, replica identity) must never
make a user's write fail. Taking a table lock can deadlock with a writer; PostgreSQL then aborts
whichever transaction runs the deadlock check first. The carve checks after 20 ms (writers after
the default second), so when the cycle is there as the carve starts waiting, the carve is the
one aborted, and it simply tries again. The check runs once per wait, though, so DDL whose lock
a writer can still run into later (ACCESS EXCLUSIVE, which even reads conflict with) does not
wait at all: it takes its locks NOWAIT and retries here on LockNotAvailable (see
capture.remove_triggers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import sqlalchemy as sa

T = TypeVar("T")
SETTINGS = ("SET LOCAL deadlock_timeout = '20ms'", "SET LOCAL lock_timeout = '5s'")
ATTEMPTS = 100


def prefer_to_lose(conn: sa.Connection) -> None:
    """Inside a carve transaction on PostgreSQL: lose lock conflicts to writers, quickly."""
    if conn.dialect.name == "postgresql":
        for stmt in SETTINGS:
            conn.exec_driver_sql(stmt)


def _lost(exc: BaseException) -> bool:
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return isinstance(cause, psycopg.errors.DeadlockDetected | psycopg.errors.LockNotAvailable)


def retrying(work: Callable[[], T], pause_s: float = 0.02, attempts: int = ATTEMPTS) -> T:
    """Run `work` again after a lost lock conflict, pausing pause_s x 1..5 between attempts."""
    for attempt in range(attempts):
        try:
            return work()
        except (sa.exc.DBAPIError, psycopg.Error) as exc:
            if not _lost(exc) or attempt == attempts - 1:
                raise
            time.sleep(pause_s * (1 + attempt % 5))
    raise AssertionError("unreachable")
