"""Request dependencies: the gateway, and the authenticated caller routed to their cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token: log in with POST /v1/sessions")
    token = credentials.credentials
    gateway = get_gateway(request)
    # Reads are served throughout a carve; writes of a fenced jurisdiction wait for the cutover.
    is_read = request.method in ("GET", "HEAD", "OPTIONS")
    try:
        jurisdiction = token_jurisdiction(token)
        cell = gateway.route(jurisdiction) if is_read else gateway.route_write(jurisdiction)
    except (PolicyError, InvalidInput) as exc:
        raise Unauthenticated("token names a jurisdiction no cell serves") from exc
    user = authenticate(cell, token)
    return Caller(user=user, cell=cell, token=token)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
CallerDep = Annotated[Caller, Depends(get_caller)]
