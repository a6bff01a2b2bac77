"""What the tills told us: sales with their lines, returns (maybe parked), redemptions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db


class PosSale(db.Model):
    """One till sale; (store_id, sale_id) is unique for ever; content_hash spots conflicts."""

    __tablename__ = "pos_sales"
    __table_args__ = (UniqueConstraint("store_id", "sale_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    sale_id: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    terminal_id: Mapped[str] = mapped_column(String(40))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    total_fen: Mapped[int] = mapped_column(BigInteger)
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    redemption_id: Mapped[str | None] = mapped_column(String(40))
    redeemed_points: Mapped[int] = mapped_column(BigInteger, default=0)
    redeemed_points_returned: Mapped[int] = mapped_column(BigInteger, default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    lines: Mapped[list[PosSaleLine]] = relationship(order_by="PosSaleLine.line_no")


class PosSaleLine(db.Model):
    __tablename__ = "pos_sale_lines"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    sale_pk: Mapped[int] = mapped_column(ForeignKey("pos_sales.id"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64), index=True)
    qty: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    # the month it is filed under (its sale's ``created_at``): partitioned by it on PostgreSQL
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PosReturn(db.Model):
    """A till return: ``parked`` until its sale arrives, then ``applied`` (or ``rejected``)."""

    __tablename__ = "pos_returns"
    __table_args__ = (UniqueConstraint("store_id", "return_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    return_id: Mapped[str] = mapped_column(String(64))
    sale_id: Mapped[str] = mapped_column(String(64), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    terminal_id: Mapped[str] = mapped_column(String(40))
    refund_fen: Mapped[int] = mapped_column(BigInteger)
    lines_json: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # parked | applied | rejected
    error_code: Mapped[str | None] = mapped_column(String(48))
    points_taken: Mapped[int] = mapped_column(BigInteger, default=0)
    points_returned: Mapped[int] = mapped_column(BigInteger, default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PosRedemption(db.Model):
    """Coupons and points held for one sale: ``held`` → ``captured`` | ``released`` | ``expired``.

    ``active_key`` (store:sale) is set while held or captured, so one sale has at most one live
    redemption; it is cleared on release or expiry so the till may try again.
    """

    __tablename__ = "pos_redemptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    terminal_id: Mapped[str] = mapped_column(String(40))
    sale_id: Mapped[str] = mapped_column(String(64))
    active_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    coupons_json: Mapped[str] = mapped_column(Text, default="[]")
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default="held")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
