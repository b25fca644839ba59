"""Accounts: users, sign-up and login, bearer sessions, profiles."""

from carveout.accounts.models import IssuedSession, NewUser, User
from carveout.accounts.service import (
    authenticate,
    create_user,
    find_by_login,
    get_user,
    issue_session,
    password_matches,
    revoke_session,
    taken,
    token_jurisdiction,
    update_profile,
    validate_new_user,
)
from carveout.accounts.signup import log_in, sign_up

__all__ = [
    "IssuedSession",
    "NewUser",
    "User",
    "authenticate",
    "create_user",
    "find_by_login",
    "get_user",
    "issue_session",
    "log_in",
    "password_matches",
    "revoke_session",
    "sign_up",
    "taken",
    "token_jurisdiction",
    "update_profile",
    "validate_new_user",
]
