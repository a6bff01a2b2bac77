"""Identifying the member at the till, by phone (may register) or by dynamic member code."""

from __future__ import annotations

from typing import Any

from app.common.phone import mask_phone
from app.db import transaction
from app.errors import NotFound
from app.members.codes import resolve_member_code
from app.members.services import resolve_member
from app.points.services import balance_of
from app.pos import coupon_port
from app.pos.context import TillContext
from app.pos.members import member_for_phone
from app.tiers.services import tier_view


def identify_member(
    ctx: TillContext,
    *,
    phone: str | None = None,
    member_code: str | None = None,
    register: bool = False,
) -> dict[str, Any]:
    """``{member_id, phone_masked, points_balance, coupons, registered}``."""

    def attempt() -> dict[str, Any]:
        if True:
            registered = False
            if member_code is not None:
                member = resolve_member(resolve_member_code(member_code))
            else:
                assert phone is not None
                found, registered = member_for_phone(
                    phone, store_id=ctx.store_id, register=register
                )
                if found is None:
                    raise NotFound(
                        "no member with this phone (send register: true to enrol)",
                        code="MEMBER_NOT_FOUND",
                    )
                member = found
            return {
                "member_id": member.id,
                "phone_masked": mask_phone(member.phone),
                "points_balance": balance_of(member.id),
                "tier": tier_view(member.id),
                "coupons": coupon_port.coupons_for_till(member.id, ctx.store_id),
                "registered": registered,
            }

    # another till registering the same phone at the same moment: the runner runs it again
    return transaction(attempt)
