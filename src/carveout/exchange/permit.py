"""Whether the residency policy lets one cell's public videos be shown by another."""

from __future__ import annotations

from carveout.cells import Policy
from carveout.core import PolicyError
from carveout.exchange.models import ExchangeRefused


def check_allowed(policy: Policy, origin: str, receiver: str) -> None:
    """Both cells must exist and both must have `content_exchange = true`: the sender because
    its creators' content leaves it, the receiver because foreign content enters it."""
    if origin == receiver:
        raise ExchangeRefused(f"an exchange needs two cells: {origin!r} to itself")
    for name in (origin, receiver):
        try:
            spec = policy.cell(name)
        except PolicyError as exc:
            raise ExchangeRefused(str(exc)) from exc
        if not spec.content_exchange:
            raise ExchangeRefused(
                f"cell {name!r} does not take part in the content exchange "
                "(content_exchange = false in the residency policy): nothing was copied"
            )


def partners(policy: Policy, receiver: str) -> tuple[str, ...]:
    """The cells whose guest content the receiver may hold under the current policy."""
    try:
        if not policy.cell(receiver).content_exchange:
            return ()
    except PolicyError:
        return ()
    return tuple(s.name for s in policy.cells if s.name != receiver and s.content_exchange)
