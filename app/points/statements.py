"""What a member (or HQ) reads about points: balance, upcoming expiries, the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from app.common.pagination import paginate
from app.extensions import db
from app.members.services import get_member
from app.points.models import PointsEntry, PointsLot
from app.points.services import balance_of


@dataclass(frozen=True)
class Expiring:
    points: int
    expires_at: datetime


@dataclass(frozen=True)
class PointsSummary:
    balance: int
    expiring: list[Expiring] = field(default_factory=list)


def points_summary(member_id: int, *, limit: int = 12) -> PointsSummary:
    """The balance and the points left per expiry instant, soonest first."""
    rows = db.session.execute(
        select(PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(
            PointsLot.member_id == member_id,
            PointsLot.remaining > 0,
            PointsLot.expires_at.is_not(None),
        )
        .group_by(PointsLot.expires_at)
        .order_by(PointsLot.expires_at)
        .limit(limit)
    ).all()
    expiring = [Expiring(int(p), at) for at, p in rows]
    return PointsSummary(balance_of(member_id), expiring)


def ledger_page(
    member_id: int, *, limit: int, cursor: str | None
) -> tuple[list[PointsEntry], str | None]:
    """One page of a member's entries, newest first."""
    get_member(member_id)
    return paginate(
        select(PointsEntry).where(PointsEntry.member_id == member_id),
        PointsEntry.id,
        limit=limit,
        cursor=cursor,
    )
