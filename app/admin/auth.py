"""Admin authentication: ``Authorization: Bearer <token>`` against stored token hashes.

Failed tokens are throttled per IP address and per presented token: 429 ``AUTH_RATE_LIMITED``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request
from sqlalchemy import select

from app.admin.models import AdminToken
from app.common.clock import utcnow
from app.common.crypto import hash_token, new_token
from app.common.throttle import Throttle, client_ip, credential_key, guard_failures
from app.errors import NotFound, Unauthorized
from app.extensions import db
from app.operators import authz

ADMIN_SECURITY = [{"adminToken": []}]


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def create_admin_token(name: str, role: str = "hq_admin", store_ids: set[int] | None = None) -> str:
    """Store a new token's hash and return the token (the only time it is seen). Commits.
    ``role`` and ``store_ids`` scope it (app.operators.authz); the default can do everything."""
    from app.operators.models import AdminTokenStore

    token = new_token("hya")
    row = AdminToken(name=name, token_hash=hash_token(token), role=role)
    db.session.add(row)
    db.session.flush()
    db.session.add_all(AdminTokenStore(token_id=row.id, store_id=s) for s in store_ids or ())
    db.session.commit()
    return token


def list_admin_tokens() -> list[AdminToken]:
    return list(db.session.scalars(select(AdminToken).order_by(AdminToken.id)))


def revoke_admin_token(token_id: int) -> AdminToken:
    """Revoke a token by id (idempotent: a revoked token keeps its first revocation time)."""
    token = db.session.get(AdminToken, token_id)
    if token is None:
        raise NotFound(f"no admin token with id {token_id}", code="TOKEN_NOT_FOUND")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    db.session.commit()
    return token


def authenticate_admin(token: str | None) -> AdminToken:
    if not token:
        raise Unauthorized("admin bearer token required", code="AUTH_REQUIRED")
    found = db.session.execute(
        select(AdminToken).where(
            AdminToken.token_hash == hash_token(token), AdminToken.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    if found is None:
        raise Unauthorized("admin token not valid", code="INVALID_TOKEN")
    return found


# Failed admin tokens are throttled per IP address and per presented token (``limits``, in Redis).
FAILED_TOKENS_PER_IP = Throttle(
    "admin-token-ip",
    "20 per 10 minutes",
    "AUTH_RATE_LIMITED",
    "too many failed admin tokens from this address; try again later",
)
FAILED_TOKENS_PER_TOKEN = Throttle(
    "admin-token",
    "5 per 10 minutes",
    "AUTH_RATE_LIMITED",
    "this admin token failed too often; try again later",
)


def authenticate_admin_throttled(token: str | None) -> AdminToken:
    guards = [(FAILED_TOKENS_PER_IP, client_ip())]
    if token:
        guards.append((FAILED_TOKENS_PER_TOKEN, credential_key(token)))
    return guard_failures(guards, lambda: authenticate_admin(token))


def admin_required(view: Callable[..., Any], *, scoped: bool = False) -> Callable[..., Any]:
    """Authenticates the token and makes it the request's principal. Unless ``scoped`` (the
    view filters by store itself), only HQ roles pass, and only ``hq_admin`` writes."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        admin = authenticate_admin_throttled(bearer_token())
        g.admin_name = admin.name
        authz.enter(authz.principal_for_token(admin))
        if not scoped:
            authz.check_hq()
        return view(*args, **kwargs)

    return wrapper


def scoped_admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """For views that apply the principal's store scope themselves (app.operators.authz)."""
    return admin_required(view, scoped=True)
