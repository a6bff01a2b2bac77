"""Whether a coupon can be used for an order, and what it takes off."""

from __future__ import annotations

from app.common.clock import utcnow
from app.coupons.errors import not_yours, refused
from app.coupons.models import Coupon
from app.coupons.state import refusal_for
from app.coupons.templates import store_ids


def discount_for(coupon: Coupon, order_total_fen: int | None) -> int:
    """What one coupon takes off an order. Unknown total: percent and gift coupons give 0 here
    (the till prices them); a cash-off coupon gives its value."""
    template = coupon.template
    if template.kind == "cash_off":
        value = int(template.value_fen or 0)
        return value if order_total_fen is None else min(value, order_total_fen)
    if template.kind == "discount" and order_total_fen is not None:
        off = order_total_fen * int(template.percent_off or 0) // 100
        return off if template.cap_fen is None else min(off, template.cap_fen)
    return 0


def check_usable(
    coupon: Coupon, member_id: int, store_id: int, order_total_fen: int | None
) -> None:
    now = utcnow()
    if coupon.owner_id != member_id:
        raise not_yours()
    if coupon.state == "available" and coupon.expires_at <= now:
        raise refused("COUPON_EXPIRED", expires_at=coupon.expires_at.isoformat())
    if coupon.state != "available":
        raise refusal_for(coupon.state)
    if coupon.valid_from > now:
        raise refused("COUPON_NOT_YET_VALID", valid_from=coupon.valid_from.isoformat())
    allowed = store_ids(coupon.template)
    if allowed and store_id not in allowed:
        raise refused("COUPON_WRONG_STORE", store_id=store_id)
    threshold = coupon.template.threshold_fen
    if threshold and order_total_fen is not None and order_total_fen < threshold:
        raise refused("COUPON_BELOW_THRESHOLD", threshold_fen=threshold)
