"""Jurisdictions are ISO 3166-1 alpha-2 codes, validated against pycountry's registry."""

from __future__ import annotations

from collections.abc import Iterable

import pycountry

from carveout.core.errors import InvalidInput

_CODES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)


def parse_jurisdiction(value: str) -> str:
    code = value.strip().upper()
    if code not in _CODES:
        raise InvalidInput(f"unknown jurisdiction code {value!r}: expected ISO 3166-1 alpha-2")
    return code


def parse_jurisdictions(values: str | Iterable[str]) -> tuple[str, ...]:
    """Parse `US,CA` or an iterable of codes into a sorted, de-duplicated tuple."""
    items = values.split(",") if isinstance(values, str) else list(values)
    codes = sorted({parse_jurisdiction(v) for v in items if v.strip()})
    if not codes:
        raise InvalidInput("no jurisdiction given")
    return tuple(codes)


def jurisdiction_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=parse_jurisdiction(code))
    return str(country.name) if country is not None else code
