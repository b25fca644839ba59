"""The staff access log's hash chains: one per jurisdiction, appended under a lock, verifiable.

Each entry's hash is sha256 over the previous entry's hash and a canonical encoding of the
entry itself, so editing, deleting, inserting or reordering an entry breaks the chain where it
happened. Chains are per jurisdiction (the subject's domicile) because a carve moves and purges
whole jurisdictions: a carved cell receives whole chains and the source keeps whole chains.
A chain proves nothing about its own tail; operators anchor it by recording the heads
(`carveout staff verify-log` prints them) somewhere the database's writers cannot reach."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from carveout.core import Conflict, new_id, now_ms
from carveout.datamap import TABLES
from carveout.storage import Store

LOG = TABLES["staff_access_log"]
GENESIS = "0" * 64
# What the hash covers: every column but the hashes themselves (prev_hash is chained in).
HASHED = (
    "id",
    "domicile",
    "seq",
    "staff_id",
    "role",
    "subject_id",
    "action",
    "purpose",
    "created_at",
)


@dataclass(frozen=True)
class NewEntry:
    domicile: str
    staff_id: str
    role: str
    subject_id: str
    action: str
    purpose: str


@dataclass(frozen=True)
class ChainProblem:
    domicile: str
    seq: int
    entry_id: str
    what: str

    def __str__(self) -> str:
        return f"{self.domicile} entry {self.seq} (id {self.entry_id}): {self.what}"


@dataclass(frozen=True)
class ChainHead:
    domicile: str
    seq: int
    hash: str


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    # Sorted keys, no whitespace, ASCII escapes: the same bytes on every backend and platform.
    body = json.dumps(
        {k: entry[k] for k in HASHED}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _lock_chain(conn: sa.Connection, domicile: str) -> None:
    """Serialise appends to one jurisdiction's chain until this transaction ends, so two
    concurrent appends cannot both extend the same head (a fork)."""
    if conn.dialect.name == "postgresql":
        # An advisory lock, not SELECT ... FOR UPDATE on the head: an empty chain has no row.
        digest = hashlib.sha256(f"carveout.staff_access_log:{domicile}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    else:
        # SQLite has one writer per database: a write statement (matching no row) takes the
        # write lock now, before the head is read. In-process writers already queue on the
        # store's lock; this covers other processes on the same file.
        conn.execute(sa.update(LOG).where(sa.false()).values(seq=LOG.c.seq))


def append(conn: sa.Connection, entries: Iterable[NewEntry]) -> list[dict[str, Any]]:
    """Append entries in the caller's transaction; they commit or vanish with it. Chains are
    locked in sorted order, so two transactions touching several chains cannot deadlock."""
    by_domicile: dict[str, list[NewEntry]] = {}
    for e in entries:
        by_domicile.setdefault(e.domicile, []).append(e)
    written: list[dict[str, Any]] = []
    for domicile in sorted(by_domicile):
        _lock_chain(conn, domicile)
        head = conn.execute(
            sa.select(LOG.c.seq, LOG.c.hash)
            .where(LOG.c.domicile == domicile)
            .order_by(LOG.c.seq.desc())
            .limit(1)
        ).first()
        seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
        for e in by_domicile[domicile]:
            seq += 1
            row: dict[str, Any] = {**vars(e), "id": new_id(), "seq": seq, "created_at": now_ms()}
            row["prev_hash"] = prev
            row["hash"] = prev = entry_hash(prev, row)
            written.append(row)
    if written:
        try:
            conn.execute(sa.insert(LOG), written)
        except sa.exc.IntegrityError as exc:
            # The unique (domicile, seq) backstop: should the lock ever fail, the read is
            # refused rather than the chain forked. Other integrity errors (a carve's seal
            # refusing a moved jurisdiction's write) pass on as they are.
            if not _duplicate(exc):
                raise
            raise Conflict("the staff access log was appended concurrently; retry") from exc
    return written


def _duplicate(exc: sa.exc.IntegrityError) -> bool:
    orig = exc.orig
    return (
        getattr(orig, "sqlstate", None) == "23505"  # PostgreSQL unique_violation
        or getattr(orig, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_UNIQUE"
    )


def _rows(store: Store) -> Iterator[Any]:
    with store.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(
            sa.select(LOG).order_by(LOG.c.domicile, LOG.c.seq)
        )
        yield from result


def verify_chain(store: Store) -> list[ChainProblem]:
    """Every break in every jurisdiction's chain, in chain order; [] when all are whole."""
    problems: list[ChainProblem] = []
    domicile, expected, prev = None, 1, GENESIS
    for row in _rows(store):
        if row.domicile != domicile:
            domicile, expected, prev = row.domicile, 1, GENESIS
        found: list[str] = []
        if row.seq != expected:
            gap = str(expected) if row.seq == expected + 1 else f"{expected}-{row.seq - 1}"
            found.append(f"entries before it are missing ({gap})")
        if row.prev_hash != prev:
            found.append(
                "its prev_hash is not the hash of the entry before it "
                "(an entry was deleted, inserted or moved)"
            )
        if entry_hash(row.prev_hash, row._mapping) != row.hash:
            found.append("its hash does not match its contents (edited)")
        problems += [ChainProblem(row.domicile, row.seq, row.id, what) for what in found]
        # Go on from the stored hash: one edit is reported once, not at every later entry.
        expected, prev = row.seq + 1, row.hash
    return problems


def chain_heads(store: Store) -> list[ChainHead]:
    """The newest entry of every jurisdiction's chain: what an operator records as an anchor."""
    newest = (
        sa.select(LOG.c.domicile, sa.func.max(LOG.c.seq).label("seq"))
        .group_by(LOG.c.domicile)
        .subquery()
    )
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(LOG.c.domicile, LOG.c.seq, LOG.c.hash)
            .join(newest, sa.and_(LOG.c.domicile == newest.c.domicile, LOG.c.seq == newest.c.seq))
            .order_by(LOG.c.domicile)
        ).all()
    return [ChainHead(r.domicile, r.seq, r.hash) for r in rows]
