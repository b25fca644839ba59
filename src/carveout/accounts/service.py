"""Sign-up, login, bearer sessions and profiles, within one cell's store."""

from __future__ import annotations

import hashlib
import secrets

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
from carveout.core import Conflict, NotFound, Unauthenticated, new_id, now_ms, parse_jurisdiction
from carveout.datamap import TABLES
from carveout.storage import Store

USERS = TABLES["users"]
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


def taken(store: Store, handle: str, email: str) -> str | None:
    """Which of handle/email this cell already holds, if any."""
    with store.connect() as conn:
        row = conn.execute(
            sa.select(USERS.c.handle, USERS.c.email).where(
                sa.or_(USERS.c.handle == handle, USERS.c.email == email)
            )
        ).first()
    if row is None:
        return None
    return "handle" if row.handle == handle else "email"


def create_user(store: Store, new: NewUser) -> User:
    """Insert a validated user; the caller (the gateway) has checked other cells for clashes."""
    clash = taken(store, new.handle, new.email)
    if clash:
        raise Conflict(f"that {clash} is already registered")
    row = {
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
    try:
        with store.begin() as conn:
            conn.execute(sa.insert(USERS).values(**row))
    except sa.exc.IntegrityError as exc:  # lost a race with a concurrent sign-up
        raise Conflict("that handle or email is already registered") from exc
    return User.from_row(row)


def find_by_login(store: Store, login: str) -> tuple[User, str] | None:
    login = login.strip().lower()
    col = USERS.c.email if "@" in login else USERS.c.handle
    with store.connect() as conn:
        row = conn.execute(sa.select(USERS).where(col == login)).first()
    if row is None or row.status != "active":
        return None
    return User.from_row(row), row.password_hash


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


def authenticate(store: Store, token: str) -> User:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(USERS, SESSIONS.c.expires_at)
            .join(SESSIONS, SESSIONS.c.user_id == USERS.c.id)
            .where(SESSIONS.c.token_hash == token_hash(token))
        ).first()
    if row is None or row.status != "active":
        raise Unauthenticated("invalid or revoked bearer token")
    if row.expires_at <= now_ms():
        raise Unauthenticated("bearer token expired: log in again")
    return User.from_row(row)


def revoke_session(store: Store, token: str) -> None:
    with store.begin() as conn:
        conn.execute(sa.delete(SESSIONS).where(SESSIONS.c.token_hash == token_hash(token)))


def get_user(store: Store, user_id: str) -> User:
    with store.connect() as conn:
        row = conn.execute(sa.select(USERS).where(USERS.c.id == user_id)).first()
    if row is None or row.status != "active":
        raise NotFound(f"no user {user_id}")
    return User.from_row(row)


def update_profile(
    store: Store, user: User, *, display_name: str | None, birth_year: int | None
) -> User:
    values: dict[str, object] = {}
    if display_name is not None:
        values["display_name"] = check_display_name(display_name)
    if birth_year is not None:
        values["birth_year"] = check_birth_year(birth_year)
    if values:
        with store.begin() as conn:
            conn.execute(sa.update(USERS).where(USERS.c.id == user.id).values(**values))
    return get_user(store, user.id)
