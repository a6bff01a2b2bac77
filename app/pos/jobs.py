"""Periodic POS jobs: release redemption holds the tills never captured."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.common.clock import utcnow
from app.extensions import db
from app.pos.models import PosRedemption
from app.pos.redemptions import expire_one


def expire_redemptions(now: datetime | None = None) -> int:
    """Release every hold past its ``expires_at``; safe to run twice or concurrently."""
    now = now or utcnow()
    overdue = list(
        db.session.scalars(
            select(PosRedemption.id)
            .where(PosRedemption.state == "held", PosRedemption.expires_at <= now)
            .order_by(PosRedemption.expires_at)
        )
    )
    db.session.rollback()
    return sum(1 for redemption_id in overdue if expire_one(redemption_id, now))
