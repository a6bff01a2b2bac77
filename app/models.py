"""Imports every model module so the metadata (and Alembic) sees the whole schema."""

from app.admin.models import AdminToken
from app.members.models import Member, MemberIdentity
from app.points.models import (
    MultiplierRule,
    PointsAccount,
    PointsEntry,
    PointsHold,
    PointsLot,
    PointsLotConsumption,
    Purchase,
    PurchaseRefund,
)
from app.stores.models import Clerk, Store, Terminal

__all__ = [
    "AdminToken",
    "Clerk",
    "Member",
    "MemberIdentity",
    "MultiplierRule",
    "PointsAccount",
    "PointsEntry",
    "PointsHold",
    "PointsLot",
    "PointsLotConsumption",
    "Purchase",
    "PurchaseRefund",
    "Store",
    "Terminal",
]
