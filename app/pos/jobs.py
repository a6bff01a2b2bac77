"""Periodic POS jobs: release redemption holds the tills never captured."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.common.clock import utcnow
from app.extensions import db
from app.pos.models import PosRedemption
from app.pos.redemptions import expire_one


def expire_redemptions(now: datetime | None = None) -> dict[str, int]:
    """Release every hold past its ``expires_at``: ``{"expired": n}``.

    Safe to run twice or concurrently; each hold is released in its own short transaction.
    Run it every minute (``flask pos expire-holds``, or as a periodic job).
    """
    now = now or utcnow()
    overdue = list(
        db.session.scalars(
            select(PosRedemption.id)
            .where(PosRedemption.state == "held", PosRedemption.expires_at <= now)
            .order_by(PosRedemption.expires_at)
        )
    )
    db.session.rollback()
    return {"expired": sum(1 for redemption_id in overdue if expire_one(redemption_id, now))}
