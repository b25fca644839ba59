"""Sealed fields: personal values encrypted under their subject's data key (crypto-shredding).

A sealed value is `s1:` + base64(nonce | AES-256-GCM ciphertext), bound by its associated
data to the table, the column and the subject, so a sealed email cannot be passed off as
someone else's or as a display name. Equality lookups (login by email, "is this handle
taken") use a keyed hash under the cell's lookup key, since sealed values are randomised."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carveout.datamap import DATA_MAP, TABLES, ColumnType, Table
from carveout.storage.keystore import LOOKUP_FILE, UserKeyStore, read_or_create_secret
from carveout.storage.port import Store

PREFIX = "s1:"


class Unreadable(ValueError):
    """A sealed value whose key is gone (the subject was erased) or that does not verify."""


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _aad(table: str, column: str, subject_id: str) -> bytes:
    return f"{table}.{column}\0{subject_id}".encode()


def normalise(value: str) -> str:
    return value.strip().lower()


class Vault:
    """One cell's user keys and lookup key, and the sealing of data-map columns with them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.keys = UserKeyStore(folder)
        self._lookup = read_or_create_secret(folder / LOOKUP_FILE)

    def lookup(self, value: str) -> str:
        return hmac.new(self._lookup, normalise(value).encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def seal_value(key: bytes, table: str, column: str, subject_id: str, value: object) -> str:
        nonce = secrets.token_bytes(12)
        ct = AESGCM(key).encrypt(nonce, str(value).encode(), _aad(table, column, subject_id))
        return PREFIX + base64.b64encode(nonce + ct).decode()

    @staticmethod
    def open_value(key: bytes, table: str, column: str, subject_id: str, sealed: str) -> str:
        if not is_sealed(sealed):
            raise Unreadable(f"{table}.{column} holds a value that is not sealed")
        raw = base64.b64decode(sealed[len(PREFIX) :])
        try:
            plain = AESGCM(key).decrypt(raw[:12], raw[12:], _aad(table, column, subject_id))
        except InvalidTag as exc:
            raise Unreadable(f"{table}.{column} of {subject_id} does not verify") from exc
        return plain.decode()

    def seal_row(self, table: Table, row: Mapping[str, Any], key: bytes) -> dict[str, Any]:
        """The row with its sealed columns encrypted under the subject's key."""
        assert table.subject is not None
        subject = str(row[table.subject])
        out = dict(row)
        for col in table.sealed_columns:
            value = out.get(col.name)
            if value is not None:
                out[col.name] = self.seal_value(key, table.name, col.name, subject, value)
        return out

    def open_rows(self, table: Table, rows: Iterable[Any]) -> list[dict[str, Any]]:
        """Rows with their sealed columns decrypted. A subject without a key (erased, or
        carved away) reads as None: the value is unreadable by design, not missing."""
        assert table.subject is not None
        plain = [dict(r._mapping if hasattr(r, "_mapping") else r) for r in rows]
        keys = self.keys.keys(str(r[table.subject]) for r in plain)
        for r in plain:
            subject = str(r[table.subject])
            key = keys.get(subject)
            for col in table.sealed_columns:
                value = r.get(col.name)
                if value is None:
                    continue
                if key is None:
                    r[col.name] = None
                    continue
                text = self.open_value(key, table.name, col.name, subject, value)
                r[col.name] = int(text) if col.type in (ColumnType.INT, ColumnType.BIGINT) else text
        return plain


def seal_legacy_rows(store: Store, vault: Vault) -> int:
    """Seal users and comments written before sealed fields existed (schema revision 0003 and
    older held them in plaintext). Cheap when there are none: one indexed probe."""
    users, comments = TABLES["users"], TABLES["comments"]
    probe = (
        sa.select(users.c.id)
        .where(users.c.handle_lookup.is_(None), users.c.status == "active")
        .limit(1)
    )
    with store.connect() as conn:
        if conn.execute(probe).first() is None:
            return 0
    users_t, comments_t = DATA_MAP.table("users"), DATA_MAP.table("comments")
    with store.begin() as conn:
        legacy = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(users).where(users.c.handle_lookup.is_(None), users.c.status == "active")
            )
        ]
        keys = vault.keys.create_many((u["id"], u["domicile"]) for u in legacy)
        for u in legacy:
            sealed = vault.seal_row(users_t, u, keys[u["id"]])
            conn.execute(
                sa.update(users)
                .where(users.c.id == u["id"])
                .values(
                    handle=sealed["handle"],
                    display_name=sealed["display_name"],
                    email=sealed["email"],
                    birth_year=sealed["birth_year"],
                    handle_lookup=vault.lookup(u["handle"]),
                    email_lookup=vault.lookup(u["email"]),
                )
            )
        plain = conn.execute(
            sa.select(comments.c.id, comments.c.user_id, comments.c.body).where(
                comments.c.body.is_not(None), comments.c.body.not_like(f"{PREFIX}%")
            )
        ).all()
        more = vault.keys.keys({c.user_id for c in plain})
        for c in plain:
            key = more.get(c.user_id)
            if key is None:
                continue  # an author with no key was erased: their text stays as found
            sealed_body = vault.seal_value(key, comments_t.name, "body", c.user_id, c.body)
            conn.execute(sa.update(comments).where(comments.c.id == c.id).values(body=sealed_body))
    return len(legacy)
