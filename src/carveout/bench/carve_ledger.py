"""The client's ledger against the cells after the carve: every acknowledged write exactly once.

Each writer's rows must be in its jurisdiction's home cell once (lost: missing; duplicated: more
than once) and in no other cell (stray). Rows that landed without an acknowledgement are counted
apart as unacknowledged: a failed request that committed anyway."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from carveout.bench.carve_load import Ledger, Writer
from carveout.cells import Deployment
from carveout.datamap import DATA_MAP, TABLES


@dataclass
class KindCheck:
    acked: int = 0
    lost: int = 0
    duplicated: int = 0
    unacknowledged: int = 0  # stored but never acknowledged
    stray: int = 0  # stored in a cell that does not serve the writer


@dataclass
class LedgerCheck:
    kinds: dict[str, KindCheck] = field(default_factory=dict)
    # Writes whose request failed: they may have landed or not; a clean run has none.
    unsure: int = 0

    @property
    def lost(self) -> int:
        return sum(k.lost for k in self.kinds.values())

    @property
    def duplicated(self) -> int:
        return sum(k.duplicated for k in self.kinds.values())

    @property
    def acked(self) -> int:
        return sum(k.acked for k in self.kinds.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "acked_rows": self.acked,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "unacknowledged": sum(k.unacknowledged for k in self.kinds.values()),
            "stray": sum(k.stray for k in self.kinds.values()),
            "unsure_writes": self.unsure,
            "by_kind": {name: vars(k) for name, k in self.kinds.items()},
        }


# kind -> (table, column the ledger names, extra filter): watch events are the client's own;
# likes and comments add an event of their own kind, checked against the like/comment ledger.
_QUERIES: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    "events": ("events", "watched_ms", ("kind", "watch")),
    "likes": ("likes", "video_id", None),
    "comments": ("comments", "body", None),
    "follows": ("follows", "followee_id", None),
    "like_events": ("events", "video_id", ("kind", "like")),
}


def _stored(
    deployment: Deployment, cell: str, kind: str, users: list[str]
) -> dict[str, Counter[Any]]:
    table, column, extra = _QUERIES[kind]
    tbl = TABLES[table]
    user_col = tbl.c.follower_id if table == "follows" else tbl.c.user_id
    stmt = sa.select(user_col, tbl.c[column]).where(user_col.in_(users))
    if extra is not None:
        stmt = stmt.where(tbl.c[extra[0]] == extra[1])
    out: dict[str, Counter[Any]] = {u: Counter() for u in users}
    home = deployment.cell(cell)
    with home.store.connect() as conn:
        rows: list[tuple[Any, Any]] = [(u, v) for u, v in conn.execute(stmt)]
    if DATA_MAP.table(table).column(column).sealed:
        # Sealed text is opened with the cell's keys; a row whose key is not here reads None
        # and still counts (a stray row is a stray whatever it says).
        mapped = home.vault.open_rows(
            DATA_MAP.table(table), [{"user_id": u, column: v} for u, v in rows]
        )
        rows = [(m["user_id"], m[column]) for m in mapped]
    for user, value in rows:
        out[user][value] += 1
    return out


def _compare(
    check: KindCheck, acked: Iterable[Any], home: Counter[Any], away: Counter[Any]
) -> None:
    wanted = Counter(acked)
    check.acked += sum(wanted.values())
    for value, n in wanted.items():
        got = home.get(value, 0)
        check.lost += max(0, n - got)
        check.duplicated += max(0, got - n)
    check.unacknowledged += sum(n for v, n in home.items() if v not in wanted)
    check.stray += sum(away.values())


def check_ledger(
    deployment: Deployment, writers: tuple[Writer, ...], ledger: Ledger
) -> LedgerCheck:
    """Compare after the carve (load stopped): the home cell is whatever serves the country now."""
    deployment.refresh_policy()
    result = LedgerCheck(unsure=len(ledger.unsure))
    books: dict[str, dict[str, list[Any]]] = {
        "events": {u: list(v) for u, v in ledger.events.items()},
        "likes": ledger.likes,
        "comments": ledger.comments,
        "follows": ledger.follows,
        "like_events": ledger.likes,
    }
    names = list(deployment.policy.names)
    by_cell: dict[str, list[Writer]] = {}
    for w in writers:
        by_cell.setdefault(deployment.cell_for(w.country).name, []).append(w)
    for kind, book in books.items():
        check = result.kinds.setdefault(kind, KindCheck())
        stored = {
            cell: _stored(deployment, cell, kind, [w.user_id for w in writers]) for cell in names
        }
        for home, members in by_cell.items():
            for w in members:
                away: Counter[Any] = Counter()
                for cell in names:
                    if cell != home:
                        away.update(stored[cell][w.user_id])
                _compare(check, book.get(w.user_id, []), stored[home][w.user_id], away)
    return result
