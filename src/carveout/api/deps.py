"""Request dependencies: the gateway, and the authenticated caller routed to their cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from carveout.accounts import User, authenticate, token_jurisdiction
from carveout.cells import Cell, Gateway
from carveout.core import InvalidInput, PolicyError, Unauthenticated

_bearer = HTTPBearer(auto_error=False, description="token from POST /v1/sessions or /v1/users")


@dataclass(frozen=True)
class Caller:
    user: User
    cell: Cell
    token: str


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token: log in with POST /v1/sessions")
    token = credentials.credentials
    gateway = get_gateway(request)
    # Reads are served throughout a carve; writes of a fenced jurisdiction wait for the cutover,
    # on the event loop (see Gateway.hold_write), before they take a worker thread.
    is_read = request.method in ("GET", "HEAD", "OPTIONS")
    try:
        jurisdiction = token_jurisdiction(token)
    except (PolicyError, InvalidInput) as exc:
        raise Unauthenticated("token names a jurisdiction no cell serves") from exc
    if not is_read:
        await gateway.hold_write(jurisdiction)
    return await run_in_threadpool(_caller, gateway, jurisdiction, token, is_read)


def _caller(gateway: Gateway, jurisdiction: str, token: str, is_read: bool) -> Caller:
    try:
        # route_write checks the fence again: one raised since hold_write holds the write here.
        cell = gateway.route(jurisdiction) if is_read else gateway.route_write(jurisdiction)
    except (PolicyError, InvalidInput) as exc:
        raise Unauthenticated("token names a jurisdiction no cell serves") from exc
    user = authenticate(cell, token)
    return Caller(user=user, cell=cell, token=token)


def access_purpose(
    x_access_purpose: Annotated[
        str | None,
        Header(
            description="why you read this personal data (1-500 characters, UTF-8); "
            "required for every staff read, recorded in the access log the subject sees",
            max_length=2000,
        ),
    ] = None,
) -> str | None:
    """The stated purpose of a staff read. Checked by the domain (a missing one is refused
    there, after the role check); here only decoded: HTTP carries header bytes as latin-1,
    and a UTF-8 purpose is recovered from them."""
    if x_access_purpose is None:
        return None
    try:
        return x_access_purpose.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return x_access_purpose


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
PurposeDep = Annotated[str | None, Depends(access_purpose)]
CallerDep = Annotated[Caller, Depends(get_caller)]
