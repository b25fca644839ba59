"""Globally unique, time-ordered ids (UUIDv7): rows move between cells without collisions."""

from __future__ import annotations

import re

import uuid6

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_id() -> str:
    return str(uuid6.uuid7())


def is_id(value: str) -> bool:
    """True for a canonical lower-case UUIDv7 string, the only id form carveout stores."""
    return bool(_UUID_RE.match(value))
