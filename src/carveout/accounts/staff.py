"""Staff roles, scoped to one cell: a grant lives in that cell's `staff_roles` and means nothing
anywhere else.

A staff member's account lives in a cell like any user's (their token routes them there), so a
grant is accepted only for an account of this cell: a role can never reach across cells. The
grants themselves are the cell's own (a SYSTEM table): a carve does not move them, and staff of
carved jurisdictions are granted again in their new cell."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from carveout.accounts.models import User
from carveout.cells import Cell
from carveout.core import Forbidden, InvalidInput, NotFound, new_id, now_ms
from carveout.core.text import check_text
from carveout.datamap import TABLES

STAFF_ROLES = TABLES["staff_roles"]
USERS = TABLES["users"]
MAX_GRANTED_BY = 100


class Role(StrEnum):
    MODERATOR = "moderator"  # review queue, decisions, hash banks
    PRIVACY_OFFICER = "privacy_officer"  # reads accounts, erases on verified requests
    OPERATOR = "operator"  # runs the cell (host access, the CLI); reads no personal data
    AUDITOR = "auditor"  # reads the staff access log and erasure receipts


@dataclass(frozen=True)
class Grant:
    user_id: str
    role: str
    granted_by: str
    created_at: int


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown staff role {value!r}: one of {known}") from None


def grant(cell: Cell, user_id: str, role: str, granted_by: str) -> tuple[Grant, bool]:
    """Give an account of this cell a role; (the grant, whether it is new). Granting a role the
    user already holds changes nothing."""
    which = parse_role(role)
    by = check_text(granted_by.strip(), "granted_by")
    if not 1 <= len(by) <= MAX_GRANTED_BY:
        raise InvalidInput(f"granted_by must be 1-{MAX_GRANTED_BY} characters")
    with cell.store.begin() as conn:
        status = conn.execute(sa.select(USERS.c.status).where(USERS.c.id == user_id)).scalar()
        if status != "active":
            # Also the answer for an account of another cell: grants never reach across cells.
            raise NotFound(f"no active account {user_id} in cell {cell.name}")
        held = conn.execute(
            sa.select(STAFF_ROLES).where(
                STAFF_ROLES.c.user_id == user_id, STAFF_ROLES.c.role == which.value
            )
        ).first()
        if held is not None:
            return Grant(held.user_id, held.role, held.granted_by, held.created_at), False
        now = now_ms()
        conn.execute(
            sa.insert(STAFF_ROLES).values(
                id=new_id(), user_id=user_id, role=which.value, granted_by=by, created_at=now
            )
        )
    return Grant(user_id, which.value, by, now), True


def revoke(cell: Cell, user_id: str, role: str) -> bool:
    """Take a role away; False when the user did not hold it here. Effective at the next request."""
    which = parse_role(role)
    with cell.store.begin() as conn:
        gone = conn.execute(
            sa.delete(STAFF_ROLES).where(
                STAFF_ROLES.c.user_id == user_id, STAFF_ROLES.c.role == which.value
            )
        ).rowcount
    return bool(gone)


def grants(cell: Cell, user_id: str | None = None, role: str | None = None) -> list[Grant]:
    """This cell's grants, oldest first, optionally for one user or one role."""
    stmt = sa.select(STAFF_ROLES).order_by(STAFF_ROLES.c.created_at, STAFF_ROLES.c.id)
    if user_id is not None:
        stmt = stmt.where(STAFF_ROLES.c.user_id == user_id)
    if role is not None:
        stmt = stmt.where(STAFF_ROLES.c.role == parse_role(role).value)
    with cell.store.connect() as conn:
        rows = conn.execute(stmt).all()
    return [Grant(r.user_id, r.role, r.granted_by, r.created_at) for r in rows]


def held_role(conn: sa.Connection, cell: Cell, user: User, roles: tuple[str, ...]) -> str:
    """The first of `roles` the user holds in this cell, read on the caller's connection (so a
    checked read sees the grant as of its own transaction); Forbidden naming what is needed."""
    wanted = [parse_role(r).value for r in roles]
    held = set(
        conn.execute(
            sa.select(STAFF_ROLES.c.role).where(
                STAFF_ROLES.c.user_id == user.id, STAFF_ROLES.c.role.in_(wanted)
            )
        ).scalars()
    )
    for role in wanted:
        if role in held:
            return role
    needed = " or ".join(wanted)
    raise Forbidden(
        f"this needs the {needed} role in cell {cell.name}, which your account does not hold "
        f"(an operator grants it: carveout staff grant)"
    )


def require_role(cell: Cell, user: User, *roles: str) -> str:
    """Forbidden (403) unless the user holds one of `roles` in this cell; returns the one held."""
    if not roles:
        raise ValueError("require_role needs at least one role")
    with cell.store.connect() as conn:
        return held_role(conn, cell, user, roles)
