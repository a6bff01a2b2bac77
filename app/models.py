"""Imports every model module so the metadata (and Alembic) sees the whole schema."""

from app.admin.models import AdminToken
from app.coupons.models import (
    Coupon,
    CouponEvent,
    CouponGift,
    CouponRedemption,
    CouponTemplate,
    CouponTemplateStore,
    WelcomeGrant,
)
from app.members.models import Member, MemberIdentity
from app.points.models import PointsAccount, PointsEntry, PointsHold, Purchase, PurchaseRefund
from app.stores.models import Clerk, Store, Terminal

__all__ = [
    "AdminToken",
    "Clerk",
    "Coupon",
    "CouponEvent",
    "CouponGift",
    "CouponRedemption",
    "CouponTemplate",
    "CouponTemplateStore",
    "Member",
    "MemberIdentity",
    "PointsAccount",
    "PointsEntry",
    "PointsHold",
    "Purchase",
    "PurchaseRefund",
    "Store",
    "Terminal",
    "WelcomeGrant",
]
