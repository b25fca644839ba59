"""Accounts as services see them: users and their sessions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class User:
    id: str
    domicile: str
    handle: str
    display_name: str
    email: str
    birth_year: int | None
    status: str
    created_at: int

    @classmethod
    def from_row(cls, row: Any) -> User:
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(
            id=m["id"],
            domicile=m["domicile"],
            handle=m["handle"],
            display_name=m["display_name"],
            email=m["email"],
            birth_year=m["birth_year"],
            status=m["status"],
            created_at=m["created_at"],
        )


@dataclass(frozen=True)
class NewUser:
    handle: str
    display_name: str
    email: str
    password: str
    birth_year: int | None
    country: str


@dataclass(frozen=True)
class IssuedSession:
    token: str
    user: User
    expires_at: int
