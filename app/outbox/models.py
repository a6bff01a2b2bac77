"""Outbox messages: the database is the source of truth, not the queue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

MESSAGE_KINDS = {
    # kind: marketing?  Transactional messages go to everyone; marketing ones respect opt-out.
    "welcome": False,
    "points_earned": False,
    "points_expiring": False,
    "coupon_received": False,
    "coupon_gifted": False,
    "coupon_claimed": False,
    "coupon_expiring": True,
    "birthday": True,
    # platform deliveries (not shown to the member as messages): unionid lookups, member cards
    "payer_unionid": False,
    "card_open": False,
    "card_sync": False,
    "card_retire": False,
    "promotion": True,  # a campaign's message
    "nurture": True,  # a journey step's message
    "tier_changed": False,
}


class OutboxMessage(db.Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (UniqueConstraint("channel", "dedupe_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(24))
    dedupe_key: Mapped[str] = mapped_column(String(160))
    payload: Mapped[dict] = mapped_column(JSON)
    marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending → sending → sent | failed | skipped
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
