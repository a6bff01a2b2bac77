"""Redemptions at the till: points (and coupons) held for one sale, captured by the sale event.

Points convert to a discount at ``POINTS_REDEEM_FEN_PER_POINT`` fen each (default 1: 100 points
= 1 yuan). Holds not captured within 30 minutes are released by ``app.pos.jobs``.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
from app.db import unit_of_work, with_retry
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.members.services import resolve_member
from app.points.holds import capture_points, hold_points, release_points
from app.pos import coupon_port
from app.pos.context import TillContext
from app.pos.models import PosRedemption

HOLD_TTL = timedelta(minutes=30)


def fen_per_point() -> int:
    return int(current_app.config.get("POINTS_REDEEM_FEN_PER_POINT") or 1)


def _same_request(red: PosRedemption, member_id: int, points: int, coupons: list[str]) -> bool:
    return (
        red.member_id == member_id
        and red.points == points
        and json.loads(red.coupons_json) == coupons
    )


def create_redemption(
    ctx: TillContext,
    *,
    sale_id: str,
    member_id: int,
    points: int,
    coupons: list[str],
    total_fen: int | None = None,
) -> PosRedemption:
    """Hold points and coupons for ``sale_id``; repeating the same request returns the hold.

    ``member_id`` comes from a presence token (``app.pos.presence``): the caller has proven
    that the member is at this till.
    """
    if points <= 0 and not coupons:
        raise ValidationFailed("nothing to redeem", code="NOTHING_TO_REDEEM")
    limit = int(current_app.config["POS_MAX_SALE_FEN"])
    if total_fen is not None and total_fen > limit:
        raise ValidationFailed(
            f"amounts above {limit} fen are not accepted from a till",
            code="AMOUNT_TOO_LARGE",
            details={"total_fen": [f"at most {limit}"]},
        )
    if coupons and total_fen is None:
        raise ValidationFailed(
            "total_fen is needed to check coupon thresholds",
            code="TOTAL_REQUIRED",
            details={"total_fen": ["required when coupons are given"]},
        )
    active_key = f"{ctx.store_id}:{sale_id}"

    def attempt() -> PosRedemption:
        with unit_of_work():
            member = resolve_member(member_id)
            existing = db.session.execute(
                select(PosRedemption).where(PosRedemption.active_key == active_key)
            ).scalar_one_or_none()
            if existing is not None:
                if existing.state == "held" and _same_request(existing, member.id, points, coupons):
                    return existing
                raise Conflict(
                    "this sale already has a redemption",
                    code="REDEMPTION_EXISTS",
                    details={"redemption_id": existing.id, "state": existing.state},
                )
            rid = "RD" + secrets.token_hex(12).upper()
            discount = points * fen_per_point()
            if points > 0:
                hold_points(member.id, points, hold_key=rid, store_id=ctx.store_id)
            if coupons:
                discount += coupon_port.hold(
                    coupons,
                    member_id=member.id,
                    store_id=ctx.store_id,
                    redemption_id=rid,
                    order_total_fen=int(total_fen or 0),
                )
            if total_fen is not None and discount > total_fen:
                raise Conflict(
                    "the discount would exceed the order total",
                    code="DISCOUNT_EXCEEDS_TOTAL",
                    details={"discount_fen": discount, "total_fen": total_fen},
                )
            red = PosRedemption(
                id=rid,
                store_id=ctx.store_id,
                terminal_id=ctx.terminal_id,
                sale_id=sale_id,
                active_key=active_key,
                member_id=member.id,
                points=points,
                coupons_json=json.dumps(coupons),
                discount_fen=discount,
                state="held",
                expires_at=utcnow() + HOLD_TTL,
            )
            db.session.add(red)
            db.session.flush()
            return red

    try:
        return with_retry(attempt)
    except IntegrityError:  # the same sale's redemption was created concurrently
        db.session.rollback()
        return with_retry(attempt)


def _lock(ctx_store_id: int | None, redemption_id: str) -> PosRedemption:
    stmt = select(PosRedemption).where(PosRedemption.id == redemption_id)
    if ctx_store_id is not None:  # a terminal sees only its own store's redemptions
        stmt = stmt.where(PosRedemption.store_id == ctx_store_id)
    red = db.session.execute(stmt.with_for_update()).scalar_one_or_none()
    if red is None:
        raise NotFound("redemption not found", code="REDEMPTION_NOT_FOUND")
    return red


def _give_back(red: PosRedemption, state: str) -> None:
    if red.points > 0:
        release_points(red.id)
    if json.loads(red.coupons_json):
        coupon_port.release(red.id)
    red.state = state
    red.active_key = None
    red.settled_at = utcnow()


def release_redemption(ctx: TillContext, redemption_id: str) -> PosRedemption:
    """The till cancelled: points and coupons go back. Releasing twice is a no-op."""

    def attempt() -> PosRedemption:
        with unit_of_work():
            red = _lock(ctx.store_id, redemption_id)
            if red.state == "captured":
                raise Conflict("a sale already used this redemption", code="REDEMPTION_CAPTURED")
            if red.state == "held":
                _give_back(red, "released")
            return red

    return with_retry(attempt)


def release_held_for_members(member_ids: list[int]) -> int:
    """Inside the caller's transaction: give back every open hold of these members (erasure)."""
    held = db.session.scalars(
        select(PosRedemption)
        .where(PosRedemption.member_id.in_(member_ids), PosRedemption.state == "held")
        .order_by(PosRedemption.id)
        .with_for_update()
    ).all()
    for red in held:
        _give_back(red, "released")
    return len(held)


def capture_for_sale(
    ctx: TillContext, redemption_id: str, *, sale_id: str, member_id: int | None
) -> PosRedemption:
    """Inside the sale event's transaction: the sale used the held points and coupons."""
    red = _lock(ctx.store_id, redemption_id)
    if red.sale_id != sale_id:
        raise Conflict("redemption was made for another sale", code="REDEMPTION_SALE_MISMATCH")
    if red.state != "held":
        raise Conflict(
            f"redemption is {red.state}", code="REDEMPTION_NOT_HELD", details={"state": red.state}
        )
    if red.expires_at <= utcnow():
        raise Conflict("redemption hold expired", code="REDEMPTION_EXPIRED")
    if member_id is not None and resolve_member(red.member_id).id != member_id:
        raise Conflict(
            "the sale names another member than the redemption",
            code="REDEMPTION_MEMBER_MISMATCH",
        )
    if red.points > 0:
        capture_points(red.id)
    if json.loads(red.coupons_json):
        coupon_port.capture(red.id, ctx.sale_key(sale_id))
    red.state = "captured"
    red.settled_at = utcnow()
    return red


def expire_one(redemption_id: str, now: datetime) -> bool:
    """Release one overdue hold in its own transaction; False if it was settled meanwhile."""

    def attempt() -> bool:
        with unit_of_work():
            red = _lock(None, redemption_id)
            if red.state != "held" or red.expires_at > now:
                return False
            _give_back(red, "expired")
            return True

    return with_retry(attempt)
