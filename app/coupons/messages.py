"""Messages to members about their coupons, written to the outbox with the coupon event."""

from __future__ import annotations

from app.coupons.models import Coupon, CouponEvent
from app.outbox.services import enqueue_message


def on_coupon_event(coupon: Coupon, event: CouponEvent, previous_owner_id: int | None) -> None:
    """Inside the transaction that records ``event``; each message keyed by the event."""
    payload = {
        "code": coupon.code,
        "name": coupon.template.name if coupon.template is not None else "",
        "expires_at": coupon.expires_at.isoformat(),
    }
    key = f"coupon-event:{event.id}"
    if event.kind == "issued":
        enqueue_message(coupon.owner_id, "coupon_received", payload, dedupe_key=key)
    elif event.kind == "gift_created":
        enqueue_message(coupon.owner_id, "coupon_gifted", payload, dedupe_key=key)
    elif event.kind == "gift_claimed" and previous_owner_id is not None:
        enqueue_message(coupon.owner_id, "coupon_received", payload, dedupe_key=f"{key}:friend")
        enqueue_message(previous_owner_id, "coupon_claimed", payload, dedupe_key=f"{key}:giver")
