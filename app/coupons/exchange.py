"""Spending points for a coupon (积分兑换): the ledger debit and the coupon in one transaction."""

from __future__ import annotations

from sqlalchemy import select

from app.coupons.errors import refused
from app.coupons.issuance import issue_one
from app.coupons.models import Coupon
from app.coupons.state import Actor
from app.coupons.templates import lock_template
from app.db import transaction
from app.extensions import db
from app.members.services import resolve_member
from app.points.services import post_entry


def exchange_for_points(
    template_id: int, member_id: int, *, request_id: str | None = None
) -> Coupon:
    """Spend the template's ``points_price`` for one coupon, atomically.

    The ledger debit (``exchange`` entry) and the coupon are one transaction; stock and limits
    are checked under the template's row lock. With ``request_id``, a repeat returns the
    coupon of the first call and debits nothing more.
    """
    member_id = resolve_member(member_id).id
    issue_key = f"exchange:{member_id}:{request_id}" if request_id else None

    def attempt() -> Coupon:
        template = lock_template(template_id)
        if issue_key:
            earlier = db.session.execute(
                select(Coupon).where(Coupon.issue_key == issue_key)
            ).scalar_one_or_none()
            if earlier is not None:
                if earlier.template_id != template_id:
                    raise refused("EXCHANGE_REQUEST_REUSED", request_id=request_id)
                return earlier
        if template.points_price is None:
            raise refused("TEMPLATE_NOT_EXCHANGEABLE", template_id=template.id)
        actor = Actor(f"member:{member_id}", "miniprogram")
        coupon = issue_one(template, member_id, source="exchange", actor=actor, issue_key=issue_key)
        post_entry(
            member_id,
            -template.points_price,
            kind="exchange",
            idempotency_key=f"coupon-exchange:{coupon.code}",
            ref_type="coupon",
            ref_id=coupon.code,
            actor=actor.name,
            reason=f"exchange for coupon template {template.id}",
        )
        return coupon

    return transaction(attempt)
