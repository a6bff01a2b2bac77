"""Coupons: one state and one owner each, agreeing with their history, holds and gifts."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select

from app.audit.types import Difference
from app.coupons.models import COUPON_STATES, Coupon, CouponEvent, CouponGift, CouponRedemption
from app.extensions import db
from app.members.models import Member


def coupon_differences() -> list[Difference]:
    return [
        *_unknown_states(),
        *_history_mismatch(),
        *_holds_mismatch(),
        *_redeemed_without_sale(),
        *_gifts_mismatch(),
        *_owned_by_merged(),
    ]


def _d(check: str, coupon_id: int, detail: str) -> Difference:
    return Difference(check, f"coupon {coupon_id}", detail)


def _unknown_states() -> list[Difference]:
    rows = db.session.execute(
        select(Coupon.id, Coupon.state).where(Coupon.state.not_in(COUPON_STATES))
    ).all()
    return [_d("coupon_unknown_state", cid, f"state {state!r}") for cid, state in rows]


def _history_mismatch() -> list[Difference]:
    """The state and owner are those its last event recorded (so it is in one state only)."""
    last = (
        select(CouponEvent.coupon_id, func.max(CouponEvent.id).label("event_id"))
        .group_by(CouponEvent.coupon_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Coupon.id, Coupon.state, Coupon.owner_id, CouponEvent.to_state, CouponEvent.owner_id)
        .outerjoin(last, last.c.coupon_id == Coupon.id)
        .outerjoin(CouponEvent, CouponEvent.id == last.c.event_id)
        .where(
            or_(
                CouponEvent.id.is_(None),
                CouponEvent.to_state != Coupon.state,
                CouponEvent.owner_id != Coupon.owner_id,
            )
        )
    ).all()
    return [
        _d(
            "coupon_state_not_history",
            cid,
            f"state {state}/owner {owner} but last event says {ev_state}/owner {ev_owner}",
        )
        for cid, state, owner, ev_state, ev_owner in rows
    ]


def _holds_mismatch() -> list[Difference]:
    """A held coupon belongs to a held redemption; a coupon of a settled one is not held."""
    held = db.session.execute(
        select(Coupon.id, Coupon.redemption_id, CouponRedemption.state)
        .outerjoin(CouponRedemption, CouponRedemption.redemption_id == Coupon.redemption_id)
        .where(
            Coupon.state == "held",
            or_(CouponRedemption.id.is_(None), CouponRedemption.state != "held"),
        )
    ).all()
    found = [
        _d("coupon_held_without_live_redemption", cid, f"redemption {rid!r} is {state}")
        for cid, rid, state in held
    ]
    stale = db.session.execute(
        select(Coupon.id, Coupon.state, CouponRedemption.redemption_id, CouponRedemption.state)
        .join(CouponRedemption, CouponRedemption.redemption_id == Coupon.redemption_id)
        .where(
            or_(
                and_(CouponRedemption.state == "held", Coupon.state != "held"),
                and_(CouponRedemption.state == "captured", Coupon.state != "redeemed"),
                and_(CouponRedemption.state == "released", Coupon.state.in_(("held", "redeemed"))),
            )
        )
    ).all()
    found += [
        _d("coupon_not_in_redemption_state", cid, f"{state} but redemption {rid!r} is {rstate}")
        for cid, state, rid, rstate in stale
    ]
    return found


def _redeemed_without_sale() -> list[Difference]:
    rows = db.session.execute(
        select(Coupon.id).where(
            Coupon.state == "redeemed",
            or_(Coupon.sale_ref.is_(None), Coupon.redeemed_at.is_(None)),
        )
    ).scalars()
    return [_d("coupon_redeemed_without_sale", cid, "no sale_ref or redeemed_at") for cid in rows]


def _gifts_mismatch() -> list[Difference]:
    """A gifting coupon has exactly one pending gift, from its owner; nothing else has one."""
    pending = (
        select(CouponGift.coupon_id, func.count().label("n"))
        .where(CouponGift.state == "pending")
        .group_by(CouponGift.coupon_id)
        .subquery()
    )
    count = func.coalesce(pending.c.n, 0)
    rows = db.session.execute(
        select(Coupon.id, Coupon.state, count)
        .outerjoin(pending, pending.c.coupon_id == Coupon.id)
        .where(
            or_(
                and_(Coupon.state == "gifting", count != 1),
                and_(Coupon.state != "gifting", count > 0),
            )
        )
    ).all()
    found = [
        _d("coupon_gift_mismatch", cid, f"state {state} with {n} pending gifts")
        for cid, state, n in rows
    ]
    givers = db.session.execute(
        select(Coupon.id, CouponGift.id, CouponGift.giver_id, Coupon.owner_id)
        .join(CouponGift, CouponGift.coupon_id == Coupon.id)
        .where(CouponGift.state == "pending", CouponGift.giver_id != Coupon.owner_id)
    ).all()
    found += [
        _d("gift_giver_not_owner", cid, f"gift {gid} from member {giver}, owner {owner}")
        for cid, gid, giver, owner in givers
    ]
    claimed = db.session.execute(
        select(CouponGift.coupon_id, CouponGift.id).where(
            CouponGift.state == "claimed", CouponGift.claimed_by_id.is_(None)
        )
    ).all()
    found += [_d("gift_claimed_by_nobody", cid, f"gift {gid}") for cid, gid in claimed]
    return found


def _owned_by_merged() -> list[Difference]:
    rows = db.session.execute(
        select(Coupon.id, Coupon.owner_id)
        .join(Member, Member.id == Coupon.owner_id)
        .where(
            or_(
                Member.status == "merged",
                # an erased member keeps only settled coupons (used, expired, voided)
                and_(Member.status == "erased", Coupon.state.in_(("available", "gifting", "held"))),
            )
        )
    ).all()
    return [
        _d("coupon_owned_by_merged_member", cid, f"owner {owner} is merged away")
        for cid, owner in rows
    ]
