"""A cell's user-key store: one data key per user, wrapped, kept apart from the cell's data.

Destroying a user's key is what makes erasure reach every copy of their sealed fields,
backups included. So the store lives beside the cell's other keys (never under the cell's data
folder, never in a data backup), wraps each data key under the cell's key-encryption key, and
deletes for real: SQLite `secure_delete` overwrites freed pages and a rollback journal (not a
WAL, which would keep the old page) holds a page only for the length of one transaction.
An erased user leaves a tombstone (id, domicile, time, request): restores re-apply it."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carveout.core import now_ms

KEK_FILE = "user-kek.key"  # 32 random bytes: wraps every user's data key
LOOKUP_FILE = "lookup.key"  # 32 random bytes: keyed hash for equality lookups of sealed values
KEYS_DB = "user-keys.db"
CACHE_TTL_S = 30.0  # an unwrapped key lives this long in one process's memory at most

_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_keys (
    user_id TEXT PRIMARY KEY, domicile TEXT NOT NULL, wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ix_user_keys_domicile ON user_keys (domicile);
CREATE TABLE IF NOT EXISTS erased (
    user_id TEXT PRIMARY KEY, domicile TEXT NOT NULL, erased_at INTEGER NOT NULL,
    request_id TEXT NOT NULL);
"""


def write_secret(path: Path, data: bytes) -> None:
    """Create a 0600 file atomically; if another process created it first, keep theirs."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # link, not rename: never replaces a key that exists
    finally:
        tmp.unlink(missing_ok=True)


def read_or_create_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        write_secret(path, secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) != 32:
        raise ValueError(f"key file {path} is damaged ({len(data)} bytes, not 32)")
    return data


@dataclass(frozen=True)
class KeyRecord:
    """A user's data key handed between key stores (a carve, a bundle). Held in memory only
    while it travels; the receiving store wraps it under its own key-encryption key."""

    user_id: str
    domicile: str
    key: bytes
    created_at: int


@dataclass(frozen=True)
class Tombstone:
    user_id: str
    domicile: str
    erased_at: int
    request_id: str


class UserKeyStore:
    """Per-user AES-256 data keys of one cell, wrapped under the cell's key-encryption key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / KEYS_DB
        self._kek = AESGCM(read_or_create_secret(folder / KEK_FILE))
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)
        self.path.chmod(0o600)  # as secret as the key files beside it

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA secure_delete=ON")
            yield db
        finally:
            db.close()

    def _wrap(self, user_id: str, key: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._kek.encrypt(nonce, key, user_id.encode())

    def _unwrap(self, user_id: str, wrapped: bytes) -> bytes:
        return self._kek.decrypt(wrapped[:12], wrapped[12:], user_id.encode())

    def create(self, user_id: str, domicile: str) -> bytes:
        """A new data key for the user (or theirs, if they have one)."""
        key = AESGCM.generate_key(bit_length=256)
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO user_keys VALUES (?, ?, ?, ?)",
                (user_id, domicile, self._wrap(user_id, key), now_ms()),
            )
        found = self.keys([user_id], fresh=True)
        return found[user_id]

    def create_many(self, users: Iterable[tuple[str, str]]) -> dict[str, bytes]:
        """Keys for many new users in one transaction (bulk loads)."""
        made = {uid: (dom, AESGCM.generate_key(bit_length=256)) for uid, dom in users}
        stamp = now_ms()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR IGNORE INTO user_keys VALUES (?, ?, ?, ?)",
                [(u, d, self._wrap(u, k), stamp) for u, (d, k) in made.items()],
            )
            db.execute("COMMIT")
        return self.keys(list(made), fresh=True)

    def keys(self, user_ids: Iterable[str], *, fresh: bool = False) -> dict[str, bytes]:
        """Data keys of those users that have one; erased users have none."""
        wanted = list(dict.fromkeys(user_ids))
        now = time.monotonic()
        out: dict[str, bytes] = {}
        missing: list[str] = []
        with self._lock:
            for uid in wanted:
                hit = None if fresh else self._cache.get(uid)
                if hit is not None and now - hit[0] < CACHE_TTL_S:
                    out[uid] = hit[1]
                else:
                    missing.append(uid)
        if missing:
            with self._connect() as db:
                for start in range(0, len(missing), 500):
                    part = missing[start : start + 500]
                    marks = ",".join("?" * len(part))
                    rows = db.execute(
                        f"SELECT user_id, wrapped FROM user_keys WHERE user_id IN ({marks})",
                        part,
                    ).fetchall()
                    for uid, wrapped in rows:
                        out[uid] = self._unwrap(uid, wrapped)
            with self._lock:
                for uid in missing:
                    if uid in out:
                        self._cache[uid] = (now, out[uid])
                    else:
                        self._cache.pop(uid, None)
        return out

    def destroy(self, user_id: str, domicile: str, request_id: str) -> bool:
        """Delete the user's key for good and leave a tombstone; True if a key was deleted."""
        with self._lock:
            self._cache.pop(user_id, None)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            gone = db.execute("DELETE FROM user_keys WHERE user_id = ?", (user_id,)).rowcount
            db.execute(
                "INSERT OR IGNORE INTO erased VALUES (?, ?, ?, ?)",
                (user_id, domicile, now_ms(), request_id),
            )
            db.execute("COMMIT")
        return gone > 0

    def discard(self, user_ids: Iterable[str]) -> None:
        """Forget keys of users whose creation was rolled back (no tombstone: they never were)."""
        ids = list(user_ids)
        with self._lock:
            for uid in ids:
                self._cache.pop(uid, None)
        with self._connect() as db:
            db.executemany("DELETE FROM user_keys WHERE user_id = ?", [(u,) for u in ids])

    def tombstones(self, domiciles: Iterable[str] | None = None) -> list[Tombstone]:
        sql = "SELECT user_id, domicile, erased_at, request_id FROM erased"
        args: list[str] = []
        if domiciles is not None:
            args = sorted(domiciles)
            sql += f" WHERE domicile IN ({','.join('?' * len(args))})"
        with self._connect() as db:
            return [Tombstone(*r) for r in db.execute(sql + " ORDER BY user_id", args)]

    def tombstone(self, user_id: str) -> Tombstone | None:
        """The user's tombstone, if they were erased."""
        with self._connect() as db:
            row = db.execute(
                "SELECT user_id, domicile, erased_at, request_id FROM erased WHERE user_id = ?",
                (user_id,),
            ).fetchone()
        return None if row is None else Tombstone(*row)

    # --- a carve moves keys with their users ---------------------------------------------

    def records(
        self, domiciles: Iterable[str], *, skip: Collection[str] = frozenset()
    ) -> list[KeyRecord]:
        """The keys of users domiciled in those jurisdictions, for another store to `accept`:
        each store wraps under its own key-encryption key, which never leaves its cell. Users
        in `skip` (keys the receiver already holds) are left out unopened."""
        doms = sorted(domiciles)
        marks = ",".join("?" * len(doms))
        with self._connect() as db:
            rows = db.execute(
                "SELECT user_id, domicile, wrapped, created_at FROM user_keys "
                f"WHERE domicile IN ({marks}) ORDER BY user_id",
                doms,
            ).fetchall()
        return [KeyRecord(u, d, self._unwrap(u, w), c) for u, d, w, c in rows if u not in skip]

    def user_ids(self, domiciles: Iterable[str]) -> set[str]:
        """Whose keys of those jurisdictions this store holds (nothing unwrapped)."""
        doms = sorted(domiciles)
        marks = ",".join("?" * len(doms))
        with self._connect() as db:
            sql = f"SELECT user_id FROM user_keys WHERE domicile IN ({marks})"
            return {r[0] for r in db.execute(sql, doms)}

    def accept(self, records: Iterable[KeyRecord], tombstones: Iterable[Tombstone]) -> int:
        """Take keys handed over by another cell, and its tombstones: a user erased at the
        source mid-carve has no key here either."""
        dead = list(tombstones)
        dead_ids = {t.user_id for t in dead}
        rows = [
            (r.user_id, r.domicile, self._wrap(r.user_id, r.key), r.created_at)
            for r in records
            if r.user_id not in dead_ids
        ]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO user_keys VALUES (?, ?, ?, ?)", rows)
            added = db.total_changes - before
            for t in dead:
                db.execute("DELETE FROM user_keys WHERE user_id = ?", (t.user_id,))
                db.execute(
                    "INSERT OR IGNORE INTO erased VALUES (?, ?, ?, ?)",
                    (t.user_id, t.domicile, t.erased_at, t.request_id),
                )
            db.execute("COMMIT")
        with self._lock:
            for t in dead:
                self._cache.pop(t.user_id, None)
        return added

    def purge(self, domiciles: Iterable[str]) -> int:
        """Remove the keys of those jurisdictions (a carve's purge): their rows left behind in
        older backups of this cell become unreadable."""
        doms = sorted(domiciles)
        marks = ",".join("?" * len(doms))
        with self._connect() as db:
            n = db.execute(
                f"DELETE FROM user_keys WHERE domicile IN ({marks})",
                doms,
            ).rowcount
        with self._lock:
            self._cache.clear()
        return n

    def count(self, domiciles: Iterable[str] | None = None) -> int:
        with self._connect() as db:
            if domiciles is None:
                return int(db.execute("SELECT count(*) FROM user_keys").fetchone()[0])
            doms = sorted(domiciles)
            marks = ",".join("?" * len(doms))
            sql = f"SELECT count(*) FROM user_keys WHERE domicile IN ({marks})"
            return int(db.execute(sql, doms).fetchone()[0])

    def domiciles(self) -> set[str]:
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT DISTINCT domicile FROM user_keys")}
