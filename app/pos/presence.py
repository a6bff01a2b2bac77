"""Proof that the member is at the till: a ``presence_token`` from scanning their member code.

A member code (``GET /mp/v1/member-code``) lives 90 s on the member's own phone; the till that
scans it gets a token bound to that terminal and that member, valid ``PRESENCE_TTL``. Points
and coupons are spent only with such a token: knowing a member id or a phone number is not
enough. The token is signed (``SECRET_KEY``), so nothing is stored for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app.common.clock import utcnow
from app.errors import Forbidden

PRESENCE_TTL = timedelta(minutes=10)


class PresenceRequired(Forbidden):
    default_code = "PRESENCE_REQUIRED"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="huiyuan-pos-presence")


def issue_presence_token(terminal_id: str, member_id: int) -> tuple[str, datetime]:
    expires_at = utcnow() + PRESENCE_TTL
    token = _serializer().dumps({"t": terminal_id, "m": member_id, "e": expires_at.timestamp()})
    return token, expires_at


def member_present(terminal_id: str, token: str | None) -> int:
    """The member id a valid token of this terminal names, else 403 ``PRESENCE_REQUIRED``."""
    if not token:
        raise PresenceRequired(
            "spending needs the member present: identify by member_code and send its presence_token"
        )
    try:
        data = _serializer().loads(token)
    except BadSignature as exc:
        raise PresenceRequired("presence_token not valid") from exc
    member_id, expires = data.get("m"), data.get("e")
    if not isinstance(member_id, int) or not isinstance(expires, float | int):
        raise PresenceRequired("presence_token not valid")
    if data.get("t") != terminal_id:
        raise PresenceRequired("presence_token was issued to another terminal")
    if expires <= utcnow().timestamp():
        raise PresenceRequired("presence_token expired: scan the member code again")
    return member_id
