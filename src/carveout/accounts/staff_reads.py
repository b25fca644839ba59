"""What staff may read of an account, through the checked path (access_log.staff_read)."""

from __future__ import annotations

import sqlalchemy as sa

from carveout.accounts.access_log import StaffRead, staff_read
from carveout.accounts.models import User
from carveout.accounts.service import USERS, open_users
from carveout.accounts.staff import Role
from carveout.cells import Cell


def read_account(cell: Cell, officer: User, user_id: str, purpose: str | None) -> User:
    """A privacy officer reads an account of this cell with its private fields (opened from
    their seals). An erased account reads as its remains: status `erased`, fields empty."""

    def read(r: StaffRead) -> User:
        r.subject(user_id, "your account with its private fields")
        row = r.conn.execute(sa.select(USERS).where(USERS.c.id == user_id)).one()
        (user,) = open_users(cell.vault, [row])
        return user

    return staff_read(cell, officer, (Role.PRIVACY_OFFICER,), purpose, read)
