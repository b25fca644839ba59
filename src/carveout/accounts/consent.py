"""Consent records: append-only, the newest per (user, purpose) in force, with its notice version.

A user with no record for a purpose has the default the notice states (given): accounts
imported from a dataset, and sign-ups before consent existed. Withdrawing personalisation
switches the feed to the non-personalised one at the next request; withdrawing training
keeps the user's events out of every training run from the next one on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from carveout.accounts.models import User
from carveout.core import InvalidInput, new_id, now_ms
from carveout.datamap import TABLES
from carveout.storage import Store

CONSENTS = TABLES["consents"]
NOTICE_VERSION = "2026-11"
MAX_VERSION = 32


class Purpose(StrEnum):
    PERSONALISATION = "personalisation"
    TRAINING = "training"


@dataclass(frozen=True)
class ConsentState:
    purpose: str
    granted: bool
    version: str  # "default" when the user never answered
    at: int | None


def parse_purpose(value: str) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        known = ", ".join(p.value for p in Purpose)
        raise InvalidInput(f"unknown consent purpose {value!r}: one of {known}") from None


def record(store: Store, user: User, purpose: str, granted: bool, version: str) -> ConsentState:
    which = parse_purpose(purpose)
    version = version.strip()
    if not version or len(version) > MAX_VERSION:
        raise InvalidInput(f"consent version must be 1 to {MAX_VERSION} characters")
    at = now_ms()
    with store.begin() as conn:
        conn.execute(
            sa.insert(CONSENTS).values(
                id=new_id(),
                domicile=user.domicile,
                user_id=user.id,
                purpose=which.value,
                granted=granted,
                version=version,
                created_at=at,
            )
        )
    return ConsentState(which.value, granted, version, at)


def current(store: Store, user_id: str) -> dict[str, ConsentState]:
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(CONSENTS)
            .where(CONSENTS.c.user_id == user_id)
            .order_by(CONSENTS.c.created_at, CONSENTS.c.id)
        ).all()
    out = {p.value: ConsentState(p.value, True, "default", None) for p in Purpose}
    for r in rows:  # oldest first: the newest wins
        out[r.purpose] = ConsentState(r.purpose, bool(r.granted), r.version, r.created_at)
    return out


# Built once: the feed asks on every request, and building the select cost more than running it.
_NEWEST_ANSWER = (
    sa.select(CONSENTS.c.granted)
    .where(
        CONSENTS.c.user_id == sa.bindparam("user_id"),
        CONSENTS.c.purpose == sa.bindparam("purpose"),
    )
    .order_by(CONSENTS.c.created_at.desc(), CONSENTS.c.id.desc())
    .limit(1)
)


def allows(store: Store, user_id: str, purpose: Purpose) -> bool:
    with store.connect() as conn:
        row = conn.execute(_NEWEST_ANSWER, {"user_id": user_id, "purpose": purpose.value}).first()
    return True if row is None else bool(row.granted)


def withdrawn(purpose: Purpose) -> sa.Select[tuple[str]]:
    """User ids whose newest answer for the purpose is a withdrawal (for use in queries)."""
    newest = (
        sa.select(
            CONSENTS.c.user_id,
            CONSENTS.c.granted,
            sa.func.row_number()
            .over(
                partition_by=CONSENTS.c.user_id,
                order_by=(CONSENTS.c.created_at.desc(), CONSENTS.c.id.desc()),
            )
            .label("n"),
        )
        .where(CONSENTS.c.purpose == purpose.value)
        .subquery()
    )
    return sa.select(newest.c.user_id).where(newest.c.n == 1, newest.c.granted.is_(False))
