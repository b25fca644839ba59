"""Sign-up, login, bearer sessions and profiles, within one cell.

Handle, display name, email and birth year are sealed under the user's data key (see
carveout.storage.sealing); login and clash checks go through their keyed lookup hashes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from carveout.accounts.models import IssuedSession, NewUser, User
from carveout.accounts.validation import (
    check_birth_year,
    check_display_name,
    check_email,
    check_handle,
    check_password,
)
from carveout.cells import Cell
from carveout.core import Conflict, NotFound, Unauthenticated, new_id, now_ms, parse_jurisdiction
from carveout.datamap import DATA_MAP, TABLES
from carveout.storage import Store, Vault

USERS = TABLES["users"]
USERS_MAP = DATA_MAP.table("users")
SESSIONS = TABLES["sessions"]
SESSION_TTL_MS = 30 * 24 * 3600 * 1000
TOKEN_PREFIX = "co1"  # noqa: S105 - a format marker, not a secret
_hasher = PasswordHasher()


def token_hash(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough; only the hash is stored.
    return hashlib.sha256(token.encode()).hexdigest()


def token_jurisdiction(token: str) -> str:
    """The jurisdiction a token was issued in, which the gateway routes on."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or len(parts[1]) != 2:
        raise Unauthenticated("malformed bearer token")
    return parts[1]


def validate_new_user(new: NewUser) -> NewUser:
    return NewUser(
        handle=check_handle(new.handle),
        display_name=check_display_name(new.display_name),
        email=check_email(new.email),
        password=check_password(new.password),
        birth_year=check_birth_year(new.birth_year),
        country=parse_jurisdiction(new.country),
    )


def taken(cell: Cell, handle: str, email: str) -> str | None:
    """Which of handle/email this cell already holds, if any."""
    handle_key, email_key = cell.vault.lookup(handle), cell.vault.lookup(email)
    with cell.store.connect() as conn:
        row = conn.execute(
            sa.select(USERS.c.handle_lookup).where(
                sa.or_(USERS.c.handle_lookup == handle_key, USERS.c.email_lookup == email_key)
            )
        ).first()
    if row is None:
        return None
    return "handle" if row.handle_lookup == handle_key else "email"


def sealed_user_rows(vault: Vault, users: list[dict[str, object]]) -> list[dict[str, object]]:
    """Rows ready to insert for new users given in plaintext: a data key per user, personal
    fields sealed under it, lookup hashes for handle and email. Every path that creates users
    (sign-up, dataset loads, demos, benchmarks) goes through here."""
    keys = vault.keys.create_many((str(u["id"]), str(u["domicile"])) for u in users)
    rows = []
    for u in users:
        row = vault.seal_row(USERS_MAP, u, keys[str(u["id"])])
        row["handle_lookup"] = vault.lookup(str(u["handle"]))
        row["email_lookup"] = vault.lookup(str(u["email"]))
        rows.append(row)
    return rows


def open_users(vault: Vault, rows: Sequence[Any]) -> list[User]:
    """Users from stored rows, their sealed fields opened."""
    return [User.from_row(r) for r in vault.open_rows(USERS_MAP, rows)]


def create_user(cell: Cell, new: NewUser) -> User:
    """Insert a validated user; the caller (the gateway) has checked other cells for clashes."""
    clash = taken(cell, new.handle, new.email)
    if clash:
        raise Conflict(f"that {clash} is already registered")
    plain: dict[str, object] = {
        "id": new_id(),
        "domicile": new.country,
        "handle": new.handle,
        "display_name": new.display_name,
        "email": new.email,
        "birth_year": new.birth_year,
        "password_hash": _hasher.hash(new.password),
        "status": "active",
        "created_at": now_ms(),
    }
    (row,) = sealed_user_rows(cell.vault, [plain])
    try:
        with cell.store.begin() as conn:
            conn.execute(sa.insert(USERS).values(**row))
    except sa.exc.IntegrityError as exc:  # lost a race with a concurrent sign-up
        cell.vault.keys.discard([str(plain["id"])])
        raise Conflict("that handle or email is already registered") from exc
    except BaseException:
        cell.vault.keys.discard([str(plain["id"])])  # no user row: no key either
        raise
    return User.from_row(plain)


def find_by_login(cell: Cell, login: str) -> tuple[User, str] | None:
    login = login.strip().lower()
    col = USERS.c.email_lookup if "@" in login else USERS.c.handle_lookup
    with cell.store.connect() as conn:
        row = conn.execute(sa.select(USERS).where(col == cell.vault.lookup(login))).first()
    if row is None or row.status != "active":
        return None
    (user,) = open_users(cell.vault, [row])
    return user, row.password_hash


def password_matches(password_hash: str, password: str) -> bool:
    if not password_hash:
        return False  # imported accounts have no password and cannot log in
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_session(store: Store, user: User) -> IssuedSession:
    token = f"{TOKEN_PREFIX}_{user.domicile}_{secrets.token_urlsafe(32)}"
    now = now_ms()
    expires = now + SESSION_TTL_MS
    with store.begin() as conn:
        conn.execute(
            sa.insert(SESSIONS).values(
                id=new_id(),
                domicile=user.domicile,
                user_id=user.id,
                token_hash=token_hash(token),
                created_at=now,
                expires_at=expires,
            )
        )
    return IssuedSession(token=token, user=user, expires_at=expires)


# Built once: every request asks (see consent._NEWEST_ANSWER).
_BY_TOKEN = (
    sa.select(USERS, SESSIONS.c.expires_at)
    .join(SESSIONS, SESSIONS.c.user_id == USERS.c.id)
    .where(SESSIONS.c.token_hash == sa.bindparam("token_hash"))
)
_STATUS = sa.select(USERS.c.status).where(USERS.c.id == sa.bindparam("user_id"))


def authenticate(cell: Cell, token: str) -> User:
    with cell.store.read() as conn:
        row = conn.execute(_BY_TOKEN, {"token_hash": token_hash(token)}).first()
    if row is None or row.status != "active":
        raise Unauthenticated("invalid or revoked bearer token")
    if row.expires_at <= now_ms():
        raise Unauthenticated("bearer token expired: log in again")
    (user,) = open_users(cell.vault, [row])
    return user


def revoke_session(store: Store, token: str) -> None:
    with store.begin() as conn:
        conn.execute(sa.delete(SESSIONS).where(SESSIONS.c.token_hash == token_hash(token)))


def require_user(store: Store, user_id: str) -> None:
    """NotFound unless the user exists here and is not erased (no personal field is read)."""
    with store.read() as conn:
        status = conn.execute(_STATUS, {"user_id": user_id}).scalar()
    if status != "active":
        raise NotFound(f"no user {user_id}")


def get_user(cell: Cell, user_id: str) -> User:
    with cell.store.connect() as conn:
        row = conn.execute(sa.select(USERS).where(USERS.c.id == user_id)).first()
    if row is None or row.status != "active":
        raise NotFound(f"no user {user_id}")
    (user,) = open_users(cell.vault, [row])
    return user


def update_profile(
    cell: Cell, user: User, *, display_name: str | None, birth_year: int | None
) -> User:
    values: dict[str, object] = {}
    if display_name is not None:
        values["display_name"] = check_display_name(display_name)
    if birth_year is not None:
        values["birth_year"] = check_birth_year(birth_year)
    if values:
        key = cell.vault.keys.keys([user.id]).get(user.id)
        if key is None:
            raise NotFound(f"no user {user.id}")
        sealed = {k: cell.vault.seal_value(key, "users", k, user.id, v) for k, v in values.items()}
        with cell.store.begin() as conn:
            conn.execute(sa.update(USERS).where(USERS.c.id == user.id).values(**sealed))
    return get_user(cell, user.id)
