"""Sign-up and login across cells: the gateway picks the cell, each cell checks its own store."""

from __future__ import annotations

from carveout.accounts.models import IssuedSession, NewUser
from carveout.accounts.service import (
    create_user,
    find_by_login,
    issue_session,
    password_matches,
    taken,
    validate_new_user,
)
from carveout.cells import Gateway
from carveout.core import Conflict, Unauthenticated


def sign_up(gateway: Gateway, new: NewUser) -> IssuedSession:
    """Create the account in the cell serving the user's country and open a first session.
    Handles and emails are unique across every cell, not only the user's own."""
    new = validate_new_user(new)
    home = gateway.route_write(new.country)
    with gateway.signup_lock:
        for cell in gateway.cells():
            clash = taken(cell, new.handle, new.email)
            if clash:
                raise Conflict(f"that {clash} is already registered")
        user = create_user(home, new)
    return issue_session(home.store, user)


def log_in(gateway: Gateway, login: str, password: str) -> IssuedSession:
    for cell in gateway.cells():
        found = find_by_login(cell, login)
        if found is None:
            continue
        user, password_hash = found
        if password_matches(password_hash, password):
            return issue_session(cell.store, user)
        break
    # One message for unknown login and wrong password: no account enumeration.
    raise Unauthenticated("wrong login or password")
