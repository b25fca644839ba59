"""Domain errors; the API maps each to one HTTP status, the CLI to one message."""

from __future__ import annotations


class CarveoutError(Exception):
    """Base of every error carveout raises on purpose; `str(e)` is the message a user sees."""

    status = 400


class InvalidInput(CarveoutError):
    status = 422


class NotFound(CarveoutError):
    status = 404


class Conflict(CarveoutError):
    status = 409


class Unauthenticated(CarveoutError):
    status = 401


class Forbidden(CarveoutError):
    status = 403


class PayloadTooLarge(CarveoutError):
    status = 413


class PolicyError(CarveoutError):
    """The residency policy is malformed or contradicts itself."""

    status = 500
