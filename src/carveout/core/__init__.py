"""Core vocabulary shared by every package: ids, jurisdictions, errors, the clock."""

from carveout.core.clock import Clock, SystemClock, now_ms
from carveout.core.errors import (
    CarveoutError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PolicyError,
    Unauthenticated,
)
from carveout.core.ids import is_id, new_id
from carveout.core.jurisdictions import jurisdiction_name, parse_jurisdiction, parse_jurisdictions

__all__ = [
    "CarveoutError",
    "Clock",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PolicyError",
    "SystemClock",
    "Unauthenticated",
    "is_id",
    "jurisdiction_name",
    "new_id",
    "now_ms",
    "parse_jurisdiction",
    "parse_jurisdictions",
]
