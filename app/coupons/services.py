"""The coupon services other packages call. Import from here, not from the modules behind it.

Transactions: functions marked *caller's transaction* flush and never commit (the POS layer
and the member merge wrap them in their own unit of work); the others own their transaction.

- Templates: ``create_template``, ``set_status``, ``get_template``.
- Issuance: ``issue_to_members``, ``exchange_for_points``; caller's transaction:
  ``issue_welcome_coupon(member_id)``, ``issue_once(template_id, member_id, *, source,
  issue_key)`` (one coupon per key, for jobs such as birthday coupons).
- Gifting: ``create_gift``, ``claim_gift``, ``cancel_gift``, ``return_expired_gift``.
- POS (caller's transaction): ``hold_for_redemption(codes, *, member_id, store_id,
  redemption_id, order_total_fen) -> discount_fen``, ``release_redemption(redemption_id)``,
  ``capture_redemption(redemption_id, sale_ref)``.
- Merge (caller's transaction): ``on_member_merge(absorbed_id, survivor_id)``.
- HQ: ``void_coupon``, ``template_report``.
- Reads: ``coupons_for_till(member_id, store_id=None) -> list[Row]`` (usable now, for the
  till's member view: each coupon's code and expiry beside its template's terms),
  ``get_coupon``.
"""

from __future__ import annotations

from app.common.clock import utcnow
from app.coupons.exchange import exchange_for_points
from app.coupons.gifting import (
    cancel_gift,
    claim_gift,
    create_gift,
    get_gift,
    lock_pending_gift,
    return_expired_gift,
)
from app.coupons.issuance import issue_batch, issue_once, issue_to_members
from app.coupons.lookup import get_coupon, lock_coupon_by_code
from app.coupons.merge import on_member_merge
from app.coupons.models import Coupon
from app.coupons.queries import coupons_for_till
from app.coupons.redemption import capture_redemption, hold_for_redemption, release_redemption
from app.coupons.report import template_report
from app.coupons.state import Actor, transition
from app.coupons.templates import create_template, get_template, set_status, update_template
from app.coupons.welcome import issue_welcome_coupon
from app.db import transaction

__all__ = [
    "cancel_gift",
    "capture_redemption",
    "claim_gift",
    "coupons_for_till",
    "create_gift",
    "create_template",
    "exchange_for_points",
    "get_coupon",
    "get_gift",
    "get_template",
    "hold_for_redemption",
    "issue_batch",
    "issue_once",
    "issue_to_members",
    "issue_welcome_coupon",
    "on_member_merge",
    "release_redemption",
    "return_expired_gift",
    "set_status",
    "template_report",
    "update_template",
    "void_coupon",
]


def void_coupon(code: str, *, admin_name: str, reason: str) -> Coupon:
    """HQ withdraws an unused coupon (``available``, or ``gifting``: the gift is cancelled).

    Locks the pending gift before the coupon, the order every gift path uses."""

    def attempt() -> Coupon:
        gift = lock_pending_gift(get_coupon(code).id)
        coupon = lock_coupon_by_code(code)
        actor = Actor(f"admin:{admin_name}", "admin")
        transition(coupon, "void", "voided", actor, ref=reason[:160])
        if gift is not None:
            gift.state = "cancelled"
            gift.settled_at = utcnow()
        return coupon

    return transaction(attempt)
