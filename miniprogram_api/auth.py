"""Member tokens for the mini-programs: signed with SECRET_KEY, resolved through merges.

A token carries the member id it was issued for. After a merge that id is an absorbed member;
``current_member()`` follows ``merged_into`` so old tokens act as the survivor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, g
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from app.admin.auth import bearer_token
from app.common.crypto import hash_token
from app.db import unit_of_work
from app.errors import NotFound, Unauthorized
from app.extensions import db
from app.members.models import Member, MemberTokenRevocation
from app.members.services import resolve_member

MEMBER_TOKEN_MAX_AGE = 30 * 24 * 3600
MEMBER_SECURITY = [{"memberToken": []}]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="huiyuan-member-token")


def issue_member_token(member_id: int, channel: str) -> str:
    """``channel`` says which mini-program logged in: ``wechat`` or ``alipay``."""
    return _serializer().dumps({"m": member_id, "c": channel})


def member_from_token(token: str | None) -> Member:
    if not token:
        raise Unauthorized("member bearer token required", code="AUTH_REQUIRED")
    try:
        data = _serializer().loads(token, max_age=MEMBER_TOKEN_MAX_AGE)
    except SignatureExpired as exc:
        raise Unauthorized("member token expired", code="TOKEN_EXPIRED") from exc
    except BadSignature as exc:
        raise Unauthorized("member token not valid", code="INVALID_TOKEN") from exc
    if not isinstance(data, dict) or not isinstance(data.get("m"), int):
        raise Unauthorized("member token not valid", code="INVALID_TOKEN")
    if db.session.get(MemberTokenRevocation, hash_token(token)) is not None:
        raise Unauthorized("member token was logged out", code="INVALID_TOKEN")
    try:
        member = resolve_member(data["m"])
    except NotFound as exc:
        raise Unauthorized("member token not valid", code="INVALID_TOKEN") from exc
    if member.status == "erased":  # erasure ends every token of the member
        raise Unauthorized("member token not valid", code="INVALID_TOKEN")
    return member


def revoke_member_token(token: str, member_id: int) -> None:
    """Logout: this token stops working (kept until it would have expired anyway)."""
    _, issued = _serializer().loads(token, return_timestamp=True)
    expires_at = issued.astimezone(UTC) + timedelta(seconds=MEMBER_TOKEN_MAX_AGE)
    try:
        with unit_of_work():
            db.session.add(
                MemberTokenRevocation(
                    token_hash=hash_token(token),
                    member_id=member_id,
                    revoked_at=datetime.now(UTC),
                    expires_at=expires_at,
                )
            )
    except IntegrityError:  # logged out twice at once: it is revoked either way
        db.session.rollback()


def member_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Sets ``g.member`` (the live member, after merges) and ``g.member_channel``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        g.member = member_from_token(token)
        g.member_token = token
        return view(*args, **kwargs)

    return wrapper
