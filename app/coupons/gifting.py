"""Gifting a coupon to a friend: a link (token) the friend claims in the mini-program.

``available`` → ``gifting`` when the link is made; then the friend claims it (the coupon, with
its original validity, becomes theirs), the giver cancels it, or it expires and the coupon
returns to the giver (``return_expired_gift``, run by the job). The gift row is locked before
its coupon, so two friends claiming at once have exactly one winner.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select

from app.common.clock import utcnow
from app.coupons.errors import gift_not_found, not_yours, refused
from app.coupons.lookup import lock_coupon_by_code, lock_coupon_by_id
from app.coupons.models import Coupon, CouponGift
from app.coupons.state import Actor, refusal_for, transition
from app.db import transaction
from app.extensions import db

GIFT_TTL = timedelta(hours=24)


def create_gift(
    code: str, member_id: int, *, ttl: timedelta = GIFT_TTL
) -> tuple[CouponGift, Coupon]:
    """The owner makes a gift link. It expires after ``ttl``, or with the coupon if sooner."""

    def attempt() -> tuple[CouponGift, Coupon]:
        coupon = lock_coupon_by_code(code)
        now = utcnow()
        if coupon.owner_id != member_id:
            raise not_yours()
        if coupon.state != "available":
            raise refusal_for(coupon.state)
        if coupon.expires_at <= now:
            raise refused("COUPON_EXPIRED", expires_at=coupon.expires_at.isoformat())
        template = coupon.template
        if not template.giftable:
            raise refused("COUPON_NOT_GIFTABLE")
        if coupon.gift_count > 0 and not template.regift_allowed:
            raise refused("COUPON_REGIFT_NOT_ALLOWED")
        gift = CouponGift(
            token=secrets.token_urlsafe(24),
            coupon_id=coupon.id,
            template_id=coupon.template_id,
            giver_id=member_id,
            state="pending",
            created_at=now,
            expires_at=min(now + ttl, coupon.expires_at),
        )
        db.session.add(gift)
        db.session.flush()
        actor = Actor(f"member:{member_id}", "miniprogram")
        transition(coupon, "gifting", "gift_created", actor, ref=f"gift:{gift.id}")
        return gift, coupon

    return transaction(attempt)


def _lock_gift(token: str) -> CouponGift:
    gift = db.session.execute(
        select(CouponGift)
        .where(CouponGift.token == token)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if gift is None:
        raise gift_not_found()
    return gift


def _refuse_settled(gift: CouponGift) -> None:
    if gift.state == "claimed":
        raise refused("GIFT_ALREADY_CLAIMED")
    if gift.state == "cancelled":
        raise refused("GIFT_CANCELLED")
    if gift.state == "returned":
        raise refused("GIFT_EXPIRED", expires_at=gift.expires_at.isoformat())


def claim_gift(token: str, member_id: int) -> Coupon:
    """A friend (``member_id``, logged in) claims the gift; they own the coupon afterwards.

    Claiming again by the same friend returns the coupon; anyone else gets
    ``GIFT_ALREADY_CLAIMED``. The giver cannot claim their own gift.
    """

    def attempt() -> Coupon:
        gift = _lock_gift(token)
        if gift.state == "claimed" and gift.claimed_by_id == member_id:
            return lock_coupon_by_id(gift.coupon_id)
        _refuse_settled(gift)
        if gift.giver_id == member_id:
            raise refused("GIFT_OWN_CLAIM")
        now = utcnow()
        if gift.expires_at <= now:
            raise refused("GIFT_EXPIRED", expires_at=gift.expires_at.isoformat())
        coupon = lock_coupon_by_id(gift.coupon_id)
        actor = Actor(f"member:{member_id}", "miniprogram")
        transition(
            coupon,
            "available",
            "gift_claimed",
            actor,
            owner_id=member_id,
            ref=f"gift:{gift.id}",
        )
        coupon.gift_count += 1
        gift.state = "claimed"
        gift.claimed_by_id = member_id
        gift.settled_at = now
        return coupon

    return transaction(attempt)


def _settle_back(gift: CouponGift, state: str, kind: str, actor: Actor) -> Coupon:
    """The gift ends unclaimed: the coupon returns to the giver (or expires if it is over)."""
    now = utcnow()
    coupon = lock_coupon_by_id(gift.coupon_id)
    to_state = "expired" if coupon.expires_at <= now else "available"
    if coupon.state == "gifting":
        transition(coupon, to_state, kind, actor, ref=f"gift:{gift.id}")
    gift.state = state
    gift.settled_at = now
    return coupon


def cancel_gift(token: str, member_id: int) -> Coupon:
    """The giver takes the gift back before it is claimed. Cancelling twice is a no-op."""

    def attempt() -> Coupon:
        gift = _lock_gift(token)
        if gift.giver_id != member_id:
            raise not_yours("GIFT_NOT_YOURS")
        if gift.state == "cancelled":
            return lock_coupon_by_id(gift.coupon_id)
        _refuse_settled(gift)
        actor = Actor(f"member:{member_id}", "miniprogram")
        coupon = _settle_back(gift, "cancelled", "gift_cancelled", actor)
        return coupon

    return transaction(attempt)


def return_expired_gift(gift_id: int) -> bool:
    """Give an unclaimed, expired gift's coupon back to the giver. True if it was returned."""

    def attempt() -> bool:
        gift = db.session.execute(
            select(CouponGift)
            .where(CouponGift.id == gift_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if gift.state != "pending" or gift.expires_at > utcnow():
            return False
        _settle_back(gift, "returned", "gift_returned", Actor("job", "job"))
        return True

    return transaction(attempt)


def lock_pending_gift(coupon_id: int) -> CouponGift | None:
    return db.session.execute(
        select(CouponGift)
        .where(CouponGift.coupon_id == coupon_id, CouponGift.state == "pending")
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def get_gift(token: str) -> CouponGift:
    """A gift as its link shows it to a friend before claiming (read only)."""
    gift = db.session.execute(
        select(CouponGift).where(CouponGift.token == token)
    ).scalar_one_or_none()
    if gift is None:
        raise gift_not_found()
    return gift


def shown_state(gift: CouponGift) -> str:
    """``pending`` | ``claimed`` | ``cancelled`` | ``expired`` (returned, or past its expiry)."""
    if gift.state == "returned" or (gift.state == "pending" and gift.expires_at <= utcnow()):
        return "expired"
    return gift.state
