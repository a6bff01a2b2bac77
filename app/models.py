"""Imports every model module so the metadata (and Alembic) sees the whole schema."""

from app.admin.models import AdminToken
from app.members.models import Member, MemberIdentity, MemberMerge
from app.points.models import PointsAccount, PointsEntry, PointsHold, Purchase, PurchaseRefund
from app.stores.models import Clerk, Store, Terminal

__all__ = [
    "AdminToken",
    "Clerk",
    "Member",
    "MemberIdentity",
    "MemberMerge",
    "PointsAccount",
    "PointsEntry",
    "PointsHold",
    "Purchase",
    "PurchaseRefund",
    "Store",
    "Terminal",
]
