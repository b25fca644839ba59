"""Hash banks of one cell: create, import, add, disable, and match frame hashes against them."""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from carveout.core import Conflict, InvalidInput, NotFound, new_id, now_ms, parse_jurisdiction
from carveout.datamap import TABLES
from carveout.moderation.hashlist import ListedHash
from carveout.moderation.index import HashIndex, build_index, pack
from carveout.moderation.models import CATEGORIES, Action, Bank, BankMatch, Ground
from carveout.moderation.pdq import MATCH_DISTANCE
from carveout.storage import Store

BANKS = TABLES["moderation_banks"]
HASHES = TABLES["moderation_bank_hashes"]
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
INSERT_CHUNK = 5_000


def create_bank(
    store: Store,
    name: str,
    jurisdiction: str,
    *,
    action: str = "reject",
    ground: str = "terms",
    category: str = "STATEMENT_CATEGORY_NONE",
    description: str = "",
) -> Bank:
    if not NAME_RE.match(name):
        raise InvalidInput("bank names are 1-64 of a-z, 0-9, '_', '.', '-' (lower case first)")
    domicile = parse_jurisdiction(jurisdiction)
    try:
        act, gr = Action(action), Ground(ground)
    except ValueError as exc:
        raise InvalidInput(f"{exc}: action is restrict|hold|reject, ground illegal|terms") from exc
    if gr is Ground.NONE:
        raise InvalidInput("a bank needs a ground: illegal or terms")
    if category not in CATEGORIES:
        raise InvalidInput(f"unknown DSA category {category!r}")
    if len(description) > 500:
        raise InvalidInput("description longer than 500 characters")
    now = now_ms()
    row = {
        "id": new_id(),
        "domicile": domicile,
        "name": name,
        "description": description,
        "action": act.value,
        "ground": gr.value,
        "category": category,
        "enabled": True,
        "created_at": now,
        "updated_at": now,
    }
    with store.begin() as conn:
        if conn.execute(sa.select(BANKS.c.id).where(BANKS.c.name == name)).first():
            raise Conflict(f"bank {name!r} exists")
        conn.execute(sa.insert(BANKS).values(**row))
    return get_bank(store, name)


def get_bank(store: Store, name: str) -> Bank:
    with store.connect() as conn:
        row = conn.execute(sa.select(BANKS).where(BANKS.c.name == name)).first()
        if row is None:
            raise NotFound(f"no bank {name!r}")
        count = conn.execute(
            sa.select(sa.func.count()).where(HASHES.c.bank_id == row.id, HASHES.c.enabled)
        ).scalar_one()
    return Bank.from_row(row, int(count))


def list_banks(store: Store) -> list[Bank]:
    counts = (
        sa.select(HASHES.c.bank_id, sa.func.count().label("n"))
        .where(HASHES.c.enabled)
        .group_by(HASHES.c.bank_id)
        .subquery()
    )
    stmt = (
        sa.select(BANKS, sa.func.coalesce(counts.c.n, 0).label("n"))
        .select_from(BANKS.outerjoin(counts, counts.c.bank_id == BANKS.c.id))
        .order_by(BANKS.c.name)
    )
    with store.connect() as conn:
        return [Bank.from_row(r, int(r.n)) for r in conn.execute(stmt)]


def _touch(conn: sa.Connection, bank_id: str) -> None:
    """Bump the bank's updated_at strictly: matchers compare it to know their index is stale."""
    prev = conn.execute(sa.select(BANKS.c.updated_at).where(BANKS.c.id == bank_id)).scalar_one()
    conn.execute(
        sa.update(BANKS).where(BANKS.c.id == bank_id).values(updated_at=max(now_ms(), prev + 1))
    )


def add_hashes(store: Store, name: str, entries: Sequence[ListedHash]) -> int:
    """Add hashes (already validated) in one transaction; re-adding a hash re-enables it.
    Returns how many were new or re-enabled."""
    bank = get_bank(store, name)
    now = now_ms()
    wanted = {e.pdq: e.note for e in entries}
    changed = 0
    with store.begin() as conn:
        existing: dict[str, bool] = {}
        keys = list(wanted)
        for start in range(0, len(keys), INSERT_CHUNK):
            part = keys[start : start + INSERT_CHUNK]
            rows = conn.execute(
                sa.select(HASHES.c.pdq, HASHES.c.enabled).where(
                    HASHES.c.bank_id == bank.id, HASHES.c.pdq.in_(part)
                )
            )
            existing.update({r.pdq: bool(r.enabled) for r in rows})
        revive = [p for p, on in existing.items() if not on]
        for start in range(0, len(revive), INSERT_CHUNK):
            conn.execute(
                sa.update(HASHES)
                .where(
                    HASHES.c.bank_id == bank.id,
                    HASHES.c.pdq.in_(revive[start : start + INSERT_CHUNK]),
                )
                .values(enabled=True)
            )
        fresh = [
            {
                "id": new_id(),
                "domicile": bank.domicile,
                "bank_id": bank.id,
                "pdq": pdq,
                "note": note,
                "enabled": True,
                "created_at": now,
            }
            for pdq, note in wanted.items()
            if pdq not in existing
        ]
        for start in range(0, len(fresh), INSERT_CHUNK):
            conn.execute(sa.insert(HASHES), fresh[start : start + INSERT_CHUNK])
        changed = len(fresh) + len(revive)
        _touch(conn, bank.id)
    return changed


def disable_hash(store: Store, name: str, pdq: str) -> None:
    bank = get_bank(store, name)
    with store.begin() as conn:
        done = conn.execute(
            sa.update(HASHES)
            .where(HASHES.c.bank_id == bank.id, HASHES.c.pdq == pdq)
            .values(enabled=False)
        ).rowcount
        if not done:
            raise NotFound(f"bank {name!r} holds no hash {pdq}")
        _touch(conn, bank.id)


def set_enabled(store: Store, name: str, enabled: bool) -> Bank:
    bank = get_bank(store, name)
    with store.begin() as conn:
        conn.execute(sa.update(BANKS).where(BANKS.c.id == bank.id).values(enabled=enabled))
        _touch(conn, bank.id)
    return get_bank(store, name)


@dataclass
class _Loaded:
    stamp: tuple[int, int]
    index: HashIndex
    bank_of_row: list[str]
    banks: dict[str, Bank]


class BankMatcher:
    """The cell's enabled bank hashes in one in-memory index, rebuilt when any bank changes:
    every lookup first reads a cheap stamp (bank count and newest updated_at), so a hash added
    is matched by the very next upload."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def _stamp(self, conn: sa.Connection) -> tuple[int, int]:
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(BANKS.c.updated_at), 0))
        ).one()
        return int(row[0]), int(row[1])

    def _current(self) -> _Loaded:
        with self._lock, self.store.connect() as conn:
            stamp = self._stamp(conn)
            if self._loaded is not None and self._loaded.stamp == stamp:
                return self._loaded
            banks = {
                r.id: Bank.from_row(r)
                for r in conn.execute(sa.select(BANKS).where(BANKS.c.enabled))
            }
            rows = conn.execute(
                sa.select(HASHES.c.pdq, HASHES.c.bank_id).where(
                    HASHES.c.enabled, HASHES.c.bank_id.in_(list(banks))
                )
            ).all()
            self._loaded = _Loaded(
                stamp, build_index(pack([r.pdq for r in rows])), [r.bank_id for r in rows], banks
            )
            return self._loaded

    @property
    def size(self) -> int:
        return self._current().index.size

    def match(self, hexes: Sequence[str], *, bank: str | None = None) -> list[BankMatch]:
        """Per bank: how many of the query hashes lie within PDQ's match distance of a hash
        it holds. `bank` limits the answer to one bank (by name)."""
        loaded = self._current()
        if not hexes or loaded.index.size == 0:
            return []
        per_bank: dict[str, dict[int, int]] = {}
        for hit in loaded.index.search(pack(list(hexes)), MATCH_DISTANCE):
            frames = per_bank.setdefault(loaded.bank_of_row[hit.row], {})
            frames[hit.query] = min(frames.get(hit.query, 256), hit.distance)
        found = [
            BankMatch(loaded.banks[b], len(frames), len(hexes), min(frames.values()))
            for b, frames in per_bank.items()
            if bank is None or loaded.banks[b].name == bank
        ]
        return sorted(found, key=lambda m: m.bank.name)


_MATCHERS: weakref.WeakKeyDictionary[Store, BankMatcher] = weakref.WeakKeyDictionary()
_MATCHERS_LOCK = threading.Lock()


def matcher(store: Store) -> BankMatcher:
    """One matcher per store, so the index is built once per bank change, not per upload."""
    with _MATCHERS_LOCK:
        found = _MATCHERS.get(store)
        if found is None:
            found = _MATCHERS[store] = BankMatcher(store)
        return found
