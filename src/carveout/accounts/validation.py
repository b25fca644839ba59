"""Rules a new or changed account must satisfy, checked before anything is written."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from carveout.core import InvalidInput

HANDLE_RE = re.compile(r"^[a-z0-9_.]{3,30}$")
# Deliberately simple: one @, a dotted domain, no spaces; delivery proves the rest.
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MIN_AGE = 13


def check_handle(handle: str) -> str:
    if not HANDLE_RE.match(handle):
        raise InvalidInput("handle must be 3-30 characters of a-z, 0-9, '_' and '.'")
    return handle


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InvalidInput(f"not a valid email address: {email!r}")
    return email.lower()


def check_display_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 80:
        raise InvalidInput("display_name must be 1-80 characters")
    return name


def check_birth_year(year: int | None) -> int | None:
    if year is None:
        return None
    this_year = datetime.now(UTC).year
    if not 1900 <= year <= this_year - MIN_AGE:
        raise InvalidInput(f"birth_year must be between 1900 and {this_year - MIN_AGE}")
    return year


def check_password(password: str) -> str:
    if not 8 <= len(password) <= 256:
        raise InvalidInput("password must be 8-256 characters")
    return password
