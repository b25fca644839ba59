"""After a restore: users erased since the backup was taken are erased again, from the key
store's tombstones (which no data backup carries)."""

from __future__ import annotations

import sqlalchemy as sa

from carveout.cells import Cell
from carveout.privacy.erasure import REQUESTS, USERS, erase, run_erasure
from carveout.privacy.models import Receipt


def reapply_tombstones(cell: Cell) -> list[Receipt]:
    """After a restore: every user the key store says was erased, but whom the restored data
    still holds, is erased again (their sealed fields were unreadable already: no key)."""
    dead = {t.user_id: t for t in cell.vault.keys.tombstones()}
    if not dead:
        return []
    with cell.store.connect() as conn:
        back = [
            r.id
            for r in conn.execute(
                sa.select(USERS.c.id).where(USERS.c.status != "erased", USERS.c.id.in_(list(dead)))
            )
        ]
        # An erasure that was mid-way when the backup was taken comes back as "running".
        stale = list(
            conn.execute(
                sa.select(REQUESTS.c.id).where(
                    REQUESTS.c.kind == "erasure",
                    REQUESTS.c.status == "running",
                    REQUESTS.c.user_id.in_(list(dead)),
                )
            ).scalars()
        )
    receipts = [run_erasure(cell, rid) for rid in stale]
    done = {r.subject_id for r in receipts}
    for uid in back:
        if uid in done:
            continue
        with cell.store.begin() as conn:
            conn.execute(sa.update(USERS).where(USERS.c.id == uid).values(status="active"))
        receipts.append(erase(cell, uid, "restore", f"tombstone of {dead[uid].request_id}"))
    return receipts
