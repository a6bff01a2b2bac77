"""Scheduled work: expire coupons, return unclaimed gifts, list coupons to remind about.

Periodic-job shape (``app.jobs.registry``): no required arguments, a small dict of counts back.
Work goes in short batches, each its own transaction, and every step is safe to run twice.
"""

from __future__ import annotations

from sqlalchemy import select

from app.common.clock import utcnow
from app.coupons.gifting import return_expired_gift
from app.coupons.models import Coupon, CouponGift
from app.coupons.queries import expiring_within
from app.coupons.state import Actor, transition
from app.db import transaction, unit_of_work
from app.extensions import db

BATCH = 500


def expire_coupons() -> dict[str, int]:
    """Mark available coupons past their validity ``expired``: ``{"expired": n}``."""
    ids = list(
        db.session.execute(
            select(Coupon.id)
            .where(Coupon.state == "available", Coupon.expires_at <= utcnow())
            .order_by(Coupon.id)
        ).scalars()
    )
    db.session.rollback()
    done = 0
    for start in range(0, len(ids), BATCH):
        done += transaction(lambda chunk=ids[start : start + BATCH]: _expire_chunk(chunk))
    return {"expired": done}


def _expire_chunk(ids: list[int]) -> int:
    done = 0
    with unit_of_work():
        now = utcnow()
        coupons = (
            db.session.execute(
                select(Coupon)
                .where(Coupon.id.in_(ids))
                .order_by(Coupon.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            .scalars()
            .all()
        )
        for coupon in coupons:
            if coupon.state == "available" and coupon.expires_at <= now:
                transition(coupon, "expired", "expired", Actor("job", "job"))
                done += 1
    return done


def return_expired_gifts() -> dict[str, int]:
    """Give unclaimed gifts past their expiry back to their givers: ``{"returned": n}``."""
    ids = list(
        db.session.execute(
            select(CouponGift.id)
            .where(CouponGift.state == "pending", CouponGift.expires_at <= utcnow())
            .order_by(CouponGift.id)
        ).scalars()
    )
    db.session.rollback()
    return {"returned": sum(1 for gift_id in ids if return_expired_gift(gift_id))}


def expiry_reminders(days: int = 3, *, exclude_opted_out: bool = True) -> list[dict]:
    """Who to remind: ``{member_id, code, template_id, expires_at}`` for coupons expiring soon
    (opted-out members left out unless ``exclude_opted_out=False``)."""
    return [
        {
            "member_id": c.owner_id,
            "code": c.code,
            "template_id": c.template_id,
            "expires_at": c.expires_at,
        }
        for c in expiring_within(days, exclude_opted_out=exclude_opted_out)
    ]
