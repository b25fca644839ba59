"""Accounts: users, sign-up and login, bearer sessions, profiles."""

from carveout.accounts.models import IssuedSession, NewUser, User
from carveout.accounts.service import (
    authenticate,
    create_user,
    find_by_login,
    get_user,
    issue_session,
    open_users,
    password_matches,
    require_user,
    revoke_session,
    sealed_user_rows,
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
    "open_users",
    "password_matches",
    "require_user",
    "revoke_session",
    "sealed_user_rows",
    "sign_up",
    "taken",
    "token_jurisdiction",
    "update_profile",
    "validate_new_user",
]
