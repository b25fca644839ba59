"""Sign up, log in and out, and profiles."""

from __future__ import annotations

from fastapi import APIRouter, status

from carveout import accounts, social
from carveout.api.deps import CallerDep, GatewayDep
from carveout.api.schemas import LoginIn, MeOut, ProfileOut, ProfilePatch, SessionOut, SignUpIn

router = APIRouter(tags=["accounts"])


def _session_out(issued: accounts.IssuedSession, cell: str) -> SessionOut:
    return SessionOut(
        token=issued.token, expires_at=issued.expires_at, user=MeOut.of_cell(issued.user, cell)
    )


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=SessionOut)
def sign_up(body: SignUpIn, gateway: GatewayDep) -> SessionOut:
    """Create an account in the cell that serves `country`; returns a first session."""
    new = accounts.NewUser(**body.model_dump())
    issued = accounts.sign_up(gateway, new)
    return _session_out(issued, gateway.route(issued.user.domicile).name)


@router.post("/sessions", status_code=status.HTTP_201_CREATED, response_model=SessionOut)
def log_in(body: LoginIn, gateway: GatewayDep) -> SessionOut:
    """Exchange a handle or email and password for a bearer token."""
    issued = accounts.log_in(gateway, body.login, body.password)
    return _session_out(issued, gateway.route(issued.user.domicile).name)


@router.delete("/sessions/current", status_code=status.HTTP_204_NO_CONTENT)
def log_out(caller: CallerDep) -> None:
    """Revoke the bearer token used for this request."""
    accounts.revoke_session(caller.cell.store, caller.token)


@router.get("/me", response_model=MeOut)
def me(caller: CallerDep) -> MeOut:
    """The caller's own account, including private fields."""
    return MeOut.of_cell(caller.user, caller.cell.name)


@router.patch("/me", response_model=MeOut)
def update_me(body: ProfilePatch, caller: CallerDep) -> MeOut:
    """Change display name or birth year."""
    user = accounts.update_profile(
        caller.cell, caller.user, display_name=body.display_name, birth_year=body.birth_year
    )
    return MeOut.of_cell(user, caller.cell.name)


@router.get("/users/{user_id}", response_model=ProfileOut)
def profile(user_id: str, caller: CallerDep) -> ProfileOut:
    """A user's public profile with follower, following and video counts."""
    user = accounts.get_user(caller.cell, user_id)
    return ProfileOut.with_counts(user, social.counts(caller.cell.store, user_id))
