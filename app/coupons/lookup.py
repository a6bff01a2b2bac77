"""Finding and locking coupons."""

from __future__ import annotations

from sqlalchemy import select

from app.coupons.errors import coupon_not_found
from app.coupons.models import Coupon
from app.extensions import db


def get_coupon(code: str) -> Coupon:
    coupon = db.session.execute(select(Coupon).where(Coupon.code == code)).scalar_one_or_none()
    if coupon is None:
        raise coupon_not_found()
    return coupon


def lock_coupon_by_code(code: str) -> Coupon:
    coupon = db.session.execute(
        select(Coupon)
        .where(Coupon.code == code)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if coupon is None:
        raise coupon_not_found()
    return coupon


def lock_coupon_by_id(coupon_id: int) -> Coupon:
    return db.session.execute(
        select(Coupon)
        .where(Coupon.id == coupon_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def lock_coupons_by_codes(codes: list[str]) -> dict[str, Coupon]:
    """Lock the coupons in id order (a fixed order, so two tills cannot deadlock)."""
    rows = db.session.execute(
        select(Coupon)
        .where(Coupon.code.in_(codes))
        .order_by(Coupon.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()
    return {coupon.code: coupon for coupon in rows}
