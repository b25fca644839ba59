"""Accounts: users, sign-up and login, bearer sessions, profiles, staff roles and the checked
path (with its hash-chained access log) for every staff read of personal data."""

from carveout.accounts.access_chain import ChainHead, ChainProblem, chain_heads, verify_chain
from carveout.accounts.access_log import AccessEntry, Audit, StaffRead, audit, read_log, staff_read
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
from carveout.accounts.staff import Grant, Role, grant, grants, require_role, revoke
from carveout.accounts.staff_reads import read_account

__all__ = [
    "AccessEntry",
    "Audit",
    "ChainHead",
    "ChainProblem",
    "Grant",
    "IssuedSession",
    "NewUser",
    "Role",
    "StaffRead",
    "User",
    "audit",
    "authenticate",
    "chain_heads",
    "create_user",
    "find_by_login",
    "get_user",
    "grant",
    "grants",
    "issue_session",
    "log_in",
    "open_users",
    "password_matches",
    "read_account",
    "read_log",
    "require_role",
    "require_user",
    "revoke",
    "revoke_session",
    "sealed_user_rows",
    "sign_up",
    "staff_read",
    "taken",
    "token_jurisdiction",
    "update_profile",
    "validate_new_user",
    "verify_chain",
]
