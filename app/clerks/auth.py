"""Clerk login (rate limited, with lockout), short-lived revocable tokens, logout.

- Throttles (``limits``, counted in Redis): ``LOGIN_ATTEMPTS`` failed logins per username
  (from any address) and ``LOGIN_FAILURES_PER_IP`` per IP address (across usernames: password
  spraying) per ``LOGIN_WINDOW_SECONDS``; more answer 429 ``LOGIN_RATE_LIMITED``.
- Lockout: ``LOCKOUT_AFTER`` failed passwords in a row lock the account for
  ``LOCKOUT_DURATION``; while locked every attempt answers 403 ``ACCOUNT_LOCKED`` without
  the password being checked.
- Tokens: random, stored hashed, valid ``TOKEN_TTL``, bound to the clerk's store at login; a
  token stops working on logout, on revocation, when the clerk is disabled or moves store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import g
from sqlalchemy import select, update

from app.admin.auth import bearer_token
from app.clerks.models import ClerkSession
from app.common.clock import utcnow
from app.common.crypto import hash_token, new_token
from app.common.lockout import LOCKOUT_AFTER as LOCKOUT_AFTER  # re-exported: tests, docs
from app.common.lockout import LOCKOUT_DURATION as LOCKOUT_DURATION
from app.common.lockout import check_password_with_lockout
from app.common.throttle import LoginThrottle
from app.db import unit_of_work
from app.errors import NotFound, Unauthorized
from app.extensions import db
from app.stores.models import Clerk, Store

CLERK_SECURITY = [{"clerkToken": []}]
TOKEN_TTL = timedelta(hours=8)  # one shift
LOGIN_ATTEMPTS = 10
LOGIN_WINDOW_SECONDS = 600
LOGIN_FAILURES_PER_IP = 20


@dataclass(frozen=True)
class ClerkContext:
    """The authenticated clerk of a request. The store comes from the token, never the request."""

    clerk_id: int
    store_id: int
    session_id: int


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at: datetime
    clerk: Clerk
    store: Store


_THROTTLE = LoginThrottle(
    "clerk",
    per_username=LOGIN_ATTEMPTS,
    per_ip=LOGIN_FAILURES_PER_IP,
    window_seconds=LOGIN_WINDOW_SECONDS,
)


def login(username: str, password: str, ip: str) -> LoginResult:
    """Throttled: failed attempts count per username and per IP address."""
    return _THROTTLE.guard(username, ip, lambda: _login(username, password))


def _login(username: str, password: str) -> LoginResult:
    now = utcnow()
    with unit_of_work():
        clerk = db.session.execute(
            select(Clerk).where(Clerk.username == username).with_for_update()
        ).scalar_one_or_none()
        refusal = check_password_with_lockout(
            clerk,
            password,
            now,
            disabled_code="CLERK_DISABLED",
            disabled_message="this clerk account is disabled",
        )
        if refusal is None:
            token = new_token("hyc")
            expires_at = now + TOKEN_TTL
            db.session.add(
                ClerkSession(
                    clerk_id=clerk.id,
                    store_id=clerk.store_id,
                    token_hash=hash_token(token),
                    expires_at=expires_at,
                    created_at=now,
                )
            )
            result = LoginResult(token, expires_at, clerk, clerk.store)
    if refusal is not None:
        raise refusal
    return result


def authenticate_clerk(token: str | None) -> ClerkContext:
    if not token:
        raise Unauthorized("clerk bearer token required", code="AUTH_REQUIRED")
    row = db.session.execute(
        select(ClerkSession, Clerk)
        .join(Clerk, Clerk.id == ClerkSession.clerk_id)
        .where(ClerkSession.token_hash == hash_token(token))
    ).one_or_none()
    if row is None:
        raise Unauthorized("clerk token not valid", code="INVALID_TOKEN")
    session, clerk = row
    if session.revoked_at is not None or clerk.status != "active":
        raise Unauthorized("clerk token revoked", code="INVALID_TOKEN")
    if session.store_id != clerk.store_id:
        raise Unauthorized("clerk moved to another store: log in again", code="INVALID_TOKEN")
    if session.expires_at <= utcnow():
        raise Unauthorized("clerk token expired", code="TOKEN_EXPIRED")
    return ClerkContext(clerk_id=clerk.id, store_id=clerk.store_id, session_id=session.id)


def logout(ctx: ClerkContext) -> None:
    with unit_of_work():
        session = db.session.get(ClerkSession, ctx.session_id)
        if session is not None and session.revoked_at is None:
            session.revoked_at = utcnow()


def revoke_clerk_sessions(clerk_id: int) -> int:
    """HQ: end every live session of a clerk (lost tablet, clerk leaving). Returns how many."""
    with unit_of_work():
        get_clerk(clerk_id)
        result = db.session.execute(
            update(ClerkSession)
            .where(ClerkSession.clerk_id == clerk_id, ClerkSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return int(result.rowcount or 0)


def unlock_clerk(clerk_id: int) -> Clerk:
    with unit_of_work():
        clerk = get_clerk(clerk_id)
        clerk.failed_logins, clerk.locked_until = 0, None
    return clerk


def get_clerk(clerk_id: int) -> Clerk:
    clerk = db.session.get(Clerk, clerk_id)
    if clerk is None:
        raise NotFound("clerk not found", code="CLERK_NOT_FOUND")
    return clerk


def clerk_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Sets ``g.clerk`` (a :class:`ClerkContext`)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.clerk = authenticate_clerk(bearer_token())
        return view(*args, **kwargs)

    return wrapper
