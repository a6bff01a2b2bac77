"""Admin authentication: ``Authorization: Bearer <token>`` against stored token hashes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request
from sqlalchemy import select

from app.admin.models import AdminToken
from app.common.crypto import hash_token, new_token
from app.errors import Unauthorized
from app.extensions import db

ADMIN_SECURITY = [{"adminToken": []}]


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def create_admin_token(name: str) -> str:
    """Store a new token's hash and return the token (the only time it is seen). Commits."""
    token = new_token("hya")
    db.session.add(AdminToken(name=name, token_hash=hash_token(token)))
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


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        admin = authenticate_admin(bearer_token())
        g.admin_name = admin.name
        return view(*args, **kwargs)

    return wrapper
