"""Coupons follow the person when two members become one."""

from __future__ import annotations

from sqlalchemy import select, update

from app.coupons.models import Coupon, CouponGift, CouponRedemption, WelcomeGrant
from app.coupons.state import Actor, transition
from app.extensions import db


def on_member_merge(absorbed_id: int, survivor_id: int) -> None:
    """Move the absorbed member's coupons, gifts and welcome grant to the survivor.

    Runs inside the caller's merge transaction (never commits); running it twice changes
    nothing more. Each moved coupon records a ``merged`` event. If both members already had a
    welcome coupon, the person keeps one: the absorbed one is voided if still unused, else the
    survivor's is voided if unused.
    """
    if absorbed_id == survivor_id:
        return
    actor = Actor(f"merge:{absorbed_id}->{survivor_id}", "merge")
    # gifts before coupons: the lock order of every gift path
    db.session.execute(
        update(CouponGift).where(CouponGift.giver_id == absorbed_id).values(giver_id=survivor_id)
    )
    db.session.execute(
        update(CouponGift)
        .where(CouponGift.claimed_by_id == absorbed_id)
        .values(claimed_by_id=survivor_id)
    )
    coupons = (
        db.session.execute(
            select(Coupon)
            .where(Coupon.owner_id == absorbed_id)
            .order_by(Coupon.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    for coupon in coupons:
        transition(coupon, coupon.state, "merged", actor, owner_id=survivor_id)
    db.session.execute(
        update(Coupon).where(Coupon.issued_to_id == absorbed_id).values(issued_to_id=survivor_id)
    )
    db.session.execute(
        update(CouponRedemption)
        .where(CouponRedemption.member_id == absorbed_id)
        .values(member_id=survivor_id)
    )
    _merge_welcome(absorbed_id, survivor_id, actor)
    db.session.flush()


def _merge_welcome(absorbed_id: int, survivor_id: int, actor: Actor) -> None:
    grants = {
        grant.member_id: grant
        for grant in db.session.execute(
            select(WelcomeGrant)
            .where(WelcomeGrant.member_id.in_((absorbed_id, survivor_id)))
            .with_for_update()
        ).scalars()
    }
    absorbed = grants.get(absorbed_id)
    if absorbed is None:
        return
    survivor = grants.get(survivor_id)
    if survivor is None:
        absorbed.member_id = survivor_id
        return
    theirs = db.session.get(Coupon, absorbed.coupon_id)
    ours = db.session.get(Coupon, survivor.coupon_id)
    if theirs.state == "available" and ours.state != "void":
        transition(theirs, "void", "voided", actor, ref="duplicate-welcome")
    elif ours.state == "available" and theirs.state not in ("void", "available"):
        transition(ours, "void", "voided", actor, ref="duplicate-welcome")
