"""Dynamic member codes: short-lived, unguessable, one member each, shown at the till.

A code is ``HY`` followed by 20 digits. WeChat and Alipay payment codes are 16–24 bare digits
(WeChat starts 10–15, Alipay 25–30), so a till can tell a member code from a payment code by
its prefix alone. 20 random digits are 66 bits: unguessable within the code's 90 s life.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from app.common.clock import utcnow
from app.errors import NotFound, ValidationFailed
from app.extensions import redis_store

CODE_TTL_SECONDS = 90
_CODE_RE = re.compile(r"^HY\d{20}$")


def _key(code: str) -> str:
    return f"member-code:{code}"


def issue_member_code(member_id: int) -> tuple[str, datetime]:
    code = "HY" + "".join(secrets.choice("0123456789") for _ in range(20))
    redis_store.client.set(_key(code), str(member_id), ex=CODE_TTL_SECONDS)
    return code, utcnow() + timedelta(seconds=CODE_TTL_SECONDS)


def resolve_member_code(code: str) -> int:
    """The member id behind a code, or ``MEMBER_CODE_INVALID`` (unknown, expired, malformed)."""
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise ValidationFailed(
            "not a member code",
            code="MEMBER_CODE_INVALID",
            details={"member_code": ["not a member code"]},
        )
    raw = redis_store.client.get(_key(code))
    if raw is None:
        raise NotFound("member code unknown or expired", code="MEMBER_CODE_INVALID")
    return int(raw)
