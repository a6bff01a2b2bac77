"""Daily rollups the KPI report reads: one row per (day, store), not the purchases.

``store_id`` 0 is the whole brand (distinct counts such as active members cannot be summed
over stores, so the brand row is counted on its own). Days are Asia/Shanghai calendar days.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime
from app.extensions import db

BRAND = 0  # the store_id of the brand-wide rows

COUNTERS = (
    "new_members",
    "new_payment",
    "new_pos",
    "new_miniprogram",
    "new_gift",
    "active_members",
    "returning_members",
    "purchases",
    "sales_fen",
    "member_sales_fen",
    "returning_sales_fen",
    "coupons_redeemed_online",
    "coupons_redeemed_offline",
    "coupons_expired",
    "points_issued",
    "points_spent",
    "points_expired",
)


class KpiDaily(db.Model):
    __tablename__ = "kpi_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    store_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    new_members: Mapped[int] = mapped_column(Integer, default=0)
    new_payment: Mapped[int] = mapped_column(Integer, default=0)
    new_pos: Mapped[int] = mapped_column(Integer, default=0)
    new_miniprogram: Mapped[int] = mapped_column(Integer, default=0)
    new_gift: Mapped[int] = mapped_column(Integer, default=0)
    active_members: Mapped[int] = mapped_column(Integer, default=0)
    returning_members: Mapped[int] = mapped_column(Integer, default=0)
    purchases: Mapped[int] = mapped_column(Integer, default=0)
    sales_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    member_sales_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    returning_sales_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    coupons_redeemed_online: Mapped[int] = mapped_column(Integer, default=0)
    coupons_redeemed_offline: Mapped[int] = mapped_column(Integer, default=0)
    coupons_expired: Mapped[int] = mapped_column(Integer, default=0)
    points_issued: Mapped[int] = mapped_column(BigInteger, default=0)
    points_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    points_expired: Mapped[int] = mapped_column(BigInteger, default=0)


class KpiClerkDaily(db.Model):
    """New members a clerk brought in (QR attribution) per day."""

    __tablename__ = "kpi_clerk_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    clerk_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(Integer)
    new_members: Mapped[int] = mapped_column(Integer, default=0)


class MemberVisitDay(db.Model):
    """A member bought at a store (0: anywhere) on a day: what makes active members distinct."""

    __tablename__ = "member_visit_days"

    member_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)


class RollupCursor(db.Model):
    """How far the rollup has read a source table: the last id, and ids seen missing.

    A row with a smaller id can commit after a larger one; such gaps are looked up again on
    later runs for ``GAP_TTL`` before they are given up as rolled back.
    """

    __tablename__ = "rollup_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    gaps: Mapped[dict] = mapped_column(JSON, default=dict)  # {id: first seen, epoch seconds}
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
