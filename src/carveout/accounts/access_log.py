"""The one checked path for every staff read of personal data: role, stated purpose, subject in
this cell, and an access-log entry committed in the same transaction as the read.

A service that shows staff anything about a user runs its read inside `staff_read`: the role is
checked, the purpose is required, and for each subject the read touched (`StaffRead.subject`
for a named user, `StaffRead.log` for subjects found by the read, such as a review queue) an
entry is appended to `staff_access_log`, hash-chained per jurisdiction (access_chain.py). If
the read fails, nothing is logged; if the log cannot be written, nothing is read. The log is
append-only: there is no function to change or remove an entry (a carve's purge removes whole
jurisdictions, which keeps every chain whole)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa

from carveout.accounts.access_chain import (
    LOG,
    ChainHead,
    ChainProblem,
    NewEntry,
    append,
    chain_heads,
    verify_chain,
)
from carveout.accounts.models import User
from carveout.accounts.staff import Role, held_role
from carveout.cells import Cell
from carveout.core import InvalidInput, NotFound, parse_jurisdiction
from carveout.core.pagination import Page, check_limit, decode_cursor, encode_cursor
from carveout.core.text import check_text
from carveout.datamap import TABLES

T = TypeVar("T")
USERS = TABLES["users"]
MAX_PURPOSE = 500
MAX_ACTION = 200
PURPOSE_HELP = "over HTTP: the X-Access-Purpose header"


@dataclass(frozen=True)
class Subject:
    id: str
    domicile: str
    status: str


@dataclass(frozen=True)
class AccessEntry:
    id: str
    domicile: str
    seq: int
    staff_id: str
    role: str
    subject_id: str
    action: str
    purpose: str
    created_at: int
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Any) -> AccessEntry:
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(**{k: m[k] for k in cls.__dataclass_fields__})


def check_purpose(purpose: str | None) -> str:
    """A stated purpose: 1-500 characters of plain text. Missing or blank is refused (422)."""
    stated = (purpose or "").strip()
    if not stated:
        raise InvalidInput(
            f"a staff read of personal data needs a stated purpose ({PURPOSE_HELP}); none given"
        )
    if len(stated) > MAX_PURPOSE:
        raise InvalidInput(f"the stated purpose is over {MAX_PURPOSE} characters")
    return check_text(stated, "the stated purpose")


@dataclass
class StaffRead:
    """A staff read in progress: its connection (one transaction), who reads, in which role and
    why, and the log entries it will commit together with the read."""

    conn: sa.Connection
    cell: Cell
    staff: User
    role: str
    purpose: str
    entries: list[NewEntry] = field(default_factory=list)

    def subject(self, user_id: str, action: str) -> Subject:
        """The named user, who must be an account of this cell (one of another cell is simply
        not found), and an entry saying what of theirs is read."""
        row = self.conn.execute(
            sa.select(USERS.c.id, USERS.c.domicile, USERS.c.status).where(USERS.c.id == user_id)
        ).first()
        if row is None:
            raise NotFound(f"no user {user_id}")
        self.log(row.id, row.domicile, action)
        return Subject(row.id, row.domicile, row.status)

    def log(self, subject_id: str, domicile: str, action: str) -> None:
        """An entry for a subject the read found in this cell's own rows."""
        if len(action) > MAX_ACTION:
            action = action[: MAX_ACTION - 1] + "…"
        self.entries.append(
            NewEntry(domicile, self.staff.id, self.role, subject_id, action, self.purpose)
        )

    def domiciles(self, user_ids: list[str]) -> dict[str, str]:
        """Domiciles of those of the ids that are accounts here (for logging found subjects)."""
        if not user_ids:
            return {}
        rows = self.conn.execute(
            sa.select(USERS.c.id, USERS.c.domicile).where(USERS.c.id.in_(sorted(set(user_ids))))
        )
        return {r.id: r.domicile for r in rows}


def staff_read(
    cell: Cell,
    staff: User,
    roles: tuple[str, ...],
    purpose: str | None,
    read: Callable[[StaffRead], T],
) -> T:
    """Run `read` as a checked staff read: Forbidden (403) without one of `roles` in this cell,
    InvalidInput (422) without a purpose, NotFound (404) for a subject not in this cell; its
    log entries are appended in the read's own transaction."""
    with cell.store.begin() as conn:
        role = held_role(conn, cell, staff, roles)
        reader = StaffRead(conn, cell, staff, role, check_purpose(purpose))
        result = read(reader)
        append(conn, reader.entries)
    return result


_LOG_CURSOR = "access-log"


def read_log(
    cell: Cell,
    auditor: User,
    purpose: str | None,
    *,
    subject_id: str | None = None,
    jurisdiction: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[AccessEntry]:
    """The cell's access log for auditors, newest first. Entries name subjects, so reading
    them is itself a staff read: logged, one entry per subject shown."""
    check_limit(limit)
    after = decode_cursor(cursor, _LOG_CURSOR)
    stmt = sa.select(LOG).order_by(LOG.c.created_at.desc(), LOG.c.id.desc()).limit(limit + 1)
    if subject_id is not None:
        stmt = stmt.where(LOG.c.subject_id == subject_id)
    if jurisdiction is not None:
        stmt = stmt.where(LOG.c.domicile == parse_jurisdiction(jurisdiction))
    if after is not None:
        at, last = after
        stmt = stmt.where(
            sa.or_(LOG.c.created_at < at, sa.and_(LOG.c.created_at == at, LOG.c.id < last))
        )

    def read(r: StaffRead) -> Page[AccessEntry]:
        rows = [AccessEntry.from_row(x) for x in r.conn.execute(stmt)]
        page, more = rows[:limit], len(rows) > limit
        shown: dict[str, tuple[str, int]] = {}
        for e in page:
            dom, n = shown.get(e.subject_id, (e.domicile, 0))
            shown[e.subject_id] = (dom, n + 1)
        for sid, (dom, n) in sorted(shown.items()):
            r.log(sid, dom, f"access-log entries about you ({n})")
        nxt = encode_cursor(_LOG_CURSOR, page[-1].created_at, page[-1].id) if more else None
        return Page(page, nxt)

    return staff_read(cell, auditor, (Role.AUDITOR,), purpose, read)


@dataclass(frozen=True)
class Audit:
    page: Page[AccessEntry]
    problems: list[ChainProblem]  # [] when every chain of the cell is whole
    heads: list[ChainHead]


def audit(cell: Cell, auditor: User, purpose: str | None, **filters: Any) -> Audit:
    """An auditor's view: a page of the log (a logged read) and the whole cell's chain check,
    made after the read so that it covers the entries the read itself appended."""
    page = read_log(cell, auditor, purpose, **filters)
    return Audit(page, verify_chain(cell.store), chain_heads(cell.store))
