"""Identifying the member at the till, by phone (may register) or by dynamic member code."""

from __future__ import annotations

from typing import Any

from app.common.phone import mask_phone
from app.db import read_only, transaction
from app.errors import NotFound, ValidationFailed
from app.members.codes import resolve_member_code
from app.members.services import find_ref
from app.pos import coupon_port
from app.pos.context import TillContext
from app.pos.members import member_for_phone
from app.pos.presence import issue_presence_token
from app.tiers.services import tier_view

# What the till may show about a coupon when the member is not proven present: never its code.
_WITHOUT_CODE = ("template_id", "name", "kind", "value_fen", "threshold_fen", "percent_off")


def identify_member(
    ctx: TillContext,
    *,
    phone: str | None = None,
    member_code: str | None = None,
    register: bool = False,
    consent: bool = False,
) -> dict[str, Any]:
    """``{member_id, phone_masked, points_balance, coupons, registered, presence_token?}``.

    By member code (shown on the member's own phone): a ``presence_token`` and the coupon
    codes, so the till may spend. By phone: points may be earned, nothing spent, no codes.
    Registering an unknown phone needs ``consent`` (the customer agreed to the brand's
    privacy notice at the till); it is recorded with channel ``pos``.
    """
    if phone is not None and register and not consent:
        raise ValidationFailed(
            "registering a phone needs the customer's consent: send consent: true once the "
            "till has shown the brand's privacy notice",
            code="CONSENT_REQUIRED",
            details={"consent": ["must be true to register"]},
        )

    def attempt() -> dict[str, Any]:
        registered = False
        if member_code is not None:
            member = find_ref(resolve_member_code(member_code))
        else:
            assert phone is not None
            found, registered = member_for_phone(phone, store_id=ctx.store_id, register=register)
            if found is None:
                raise NotFound(
                    "no member with this phone (send register: true to enrol)",
                    code="MEMBER_NOT_FOUND",
                )
            member = found
        coupons = coupon_port.coupons_for_till(member.id, ctx.store_id)
        answer: dict[str, Any] = {
            "member_id": member.id,
            "phone_masked": mask_phone(member.phone),
            "points_balance": member.balance,
            "tier": tier_view(member.id),
            "registered": registered,
        }
        if member_code is not None:
            token, expires_at = issue_presence_token(ctx.terminal_id, member.id)
            answer.update(coupons=coupons, presence_token=token, presence_expires_at=expires_at)
        else:
            answer["coupons"] = [{k: c[k] for k in _WITHOUT_CODE} for c in coupons]
        return answer

    if phone is not None and register:
        # another till registering the same phone at the same moment: the runner runs it again
        return transaction(attempt)
    return read_only(attempt)  # a lookup: no transaction's round trips
