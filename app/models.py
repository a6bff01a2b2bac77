"""Imports every model module so the metadata (and Alembic) sees the whole schema."""

from app.admin.models import AdminToken
from app.jobs.models import JobRun
from app.members.models import Member, MemberIdentity
from app.outbox.models import OutboxMessage
from app.points.models import PointsAccount, PointsEntry, PointsHold, Purchase, PurchaseRefund
from app.stores.models import Clerk, Store, Terminal

__all__ = [
    "AdminToken",
    "Clerk",
    "JobRun",
    "Member",
    "MemberIdentity",
    "OutboxMessage",
    "PointsAccount",
    "PointsEntry",
    "PointsHold",
    "Purchase",
    "PurchaseRefund",
    "Store",
    "Terminal",
]
