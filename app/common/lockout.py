"""Password checks with lockout, shared by every account kind that logs in (clerks, operators).

``LOCKOUT_AFTER`` wrong passwords in a row lock the account for ``LOCKOUT_DURATION``; while
locked, every attempt answers 403 ``ACCOUNT_LOCKED`` without the password being checked. An
unknown username costs the same hashing work as a real one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import DomainError, Forbidden, Unauthorized

LOCKOUT_AFTER = 5
LOCKOUT_DURATION = timedelta(minutes=15)

_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash("not-a-password", method="scrypt"))
    return _DUMMY_HASH[0]


def check_password_with_lockout(
    account: Any, password: str, now: datetime, *, disabled_code: str, disabled_message: str
) -> DomainError | None:
    """The refusal for this attempt, or None when it succeeds (the counters are then reset).

    ``account`` (locked by the caller) has ``password_hash``, ``failed_logins``,
    ``locked_until`` and ``status``; a failed attempt updates its counters."""
    if account is None:
        check_password_hash(_dummy_hash(), password)  # same work as for a real account
        return Unauthorized("username or password wrong", code="INVALID_CREDENTIALS")
    if account.locked_until is not None and account.locked_until > now:
        return Forbidden(
            "account locked after repeated failed logins",
            code="ACCOUNT_LOCKED",
            details={"locked_until": account.locked_until.isoformat()},
        )
    if not check_password_hash(account.password_hash, password):
        account.failed_logins = (account.failed_logins or 0) + 1
        if account.failed_logins >= LOCKOUT_AFTER:
            account.locked_until, account.failed_logins = now + LOCKOUT_DURATION, 0
        return Unauthorized("username or password wrong", code="INVALID_CREDENTIALS")
    if account.status != "active":
        return Forbidden(disabled_message, code=disabled_code)
    account.failed_logins, account.locked_until = 0, None
    return None
