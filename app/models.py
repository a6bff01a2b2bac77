"""Imports every model module so the metadata (and Alembic) sees the whole schema."""

from app.admin.models import AdminToken
from app.members.models import Member, MemberIdentity
from app.points.models import PointsAccount, PointsEntry, PointsHold, Purchase, PurchaseRefund
from app.pos.models import PosRedemption, PosReturn, PosSale, PosSaleLine
from app.stores.models import Clerk, Store, Terminal

__all__ = [
    "AdminToken",
    "Clerk",
    "Member",
    "MemberIdentity",
    "PointsAccount",
    "PointsEntry",
    "PointsHold",
    "PosRedemption",
    "PosReturn",
    "PosSale",
    "PosSaleLine",
    "Purchase",
    "PurchaseRefund",
    "Store",
    "Terminal",
]
