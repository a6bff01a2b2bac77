"""The money journal: every verified money event, stored once by its business key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

EVENT_STATES = ("pending", "held", "applied", "rejected")


class MoneyEvent(db.Model):
    """One verified payment, refund, sale or return, as it arrived.

    ``event_key`` is the business id (``wechat:pay:<transaction_id>``,
    ``wechat:refund:<refund_id>``, ``alipay:refund:<trade_no>:<out_biz_no>`` …): storing the
    same event twice stores it once. ``purchase_key`` (``<source>:<external id>``) names the
    purchase the event belongs to, so a refund that arrives before its payment waits
    (``held``) until that payment is applied. ``payer_key`` lets the mini-program apply a
    payer's pending events before answering them.
    """

    __tablename__ = "money_events"
    __table_args__ = (
        Index(
            "ix_money_events_pending",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index(
            "ix_money_events_held",
            "purchase_key",
            postgresql_where=text("state = 'held'"),
            sqlite_where=text("state = 'held'"),
        ),
        Index(
            "ix_money_events_payer",
            "payer_key",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # payment | refund
    source: Mapped[str] = mapped_column(String(16))  # wechat | alipay | pos
    purchase_key: Mapped[str] = mapped_column(String(200))
    payer_key: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    error_code: Mapped[str | None] = mapped_column(String(48))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
