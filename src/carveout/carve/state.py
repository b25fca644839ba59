"""carve_state: the carve's progress, kept on the target in the same transactions as its rows."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from carveout.core import now_ms
from carveout.datamap import TABLES

STATE = TABLES["carve_state"]


def put(conn: sa.Connection, key: str, value: Any) -> None:
    """Upsert inside the caller's transaction: progress commits with the work it records."""
    body = json.dumps(value, sort_keys=True)
    updated = conn.execute(
        sa.update(STATE).where(STATE.c.key == key).values(value=body, updated_at=now_ms())
    ).rowcount
    if not updated:
        conn.execute(sa.insert(STATE).values(key=key, value=body, updated_at=now_ms()))


def get(conn: sa.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute(sa.select(STATE.c.value).where(STATE.c.key == key)).first()
    return default if row is None else json.loads(row[0])


def all_state(conn: sa.Connection) -> dict[str, Any]:
    return {r.key: json.loads(r.value) for r in conn.execute(sa.select(STATE))}
