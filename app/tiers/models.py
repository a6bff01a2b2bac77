"""The ladder, each member's tier and basis, monthly basis buckets, and the tier history.

``member_tiers`` holds one row per member who ever bought (members without a row are on the
lowest tier with a zero basis). Its basis columns are kept incrementally by the purchases
listener; ``member_tier_months`` holds the same money and counts per calendar month
(Asia/Shanghai), so the review can drop months that left the rolling 12-month window without
ever scanning purchases.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

BASES = ("payer_fen_12m", "purchases_12m", "growth")


class TierSettings(db.Model):
    """The ladder's settings (one row, id 1) and the progress of its re-evaluation job."""

    __tablename__ = "tier_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    basis: Mapped[str] = mapped_column(String(16), default="payer_fen_12m")
    keep_months: Mapped[int] = mapped_column(Integer, default=12)
    review_max_steps: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # re-evaluation of every member after a ladder change: pending → running → done
    reeval_state: Mapped[str] = mapped_column(String(16), default="done")
    reeval_done: Mapped[int] = mapped_column(Integer, default=0)
    reeval_total: Mapped[int] = mapped_column(Integer, default=0)
    reeval_after: Mapped[int] = mapped_column(Integer, default=0)  # the last member id done
    reeval_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Tier(db.Model):
    __tablename__ = "tiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer, unique=True)
    threshold: Mapped[int] = mapped_column(BigInteger)
    earn_multiplier_pct: Mapped[int] = mapped_column(Integer, default=100)
    upgrade_coupon_template_id: Mapped[int | None] = mapped_column(
        ForeignKey("coupon_templates.id")
    )
    birthday_coupon_template_id: Mapped[int | None] = mapped_column(
        ForeignKey("coupon_templates.id")
    )


class MemberTier(db.Model):
    __tablename__ = "member_tiers"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    # the tier earned by the basis (with its keep period); None until first evaluated
    tier_code: Mapped[str | None] = mapped_column(String(32))
    reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    keep_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    reach_no: Mapped[int] = mapped_column(Integer, default=0)  # one more at every change
    payer_fen_12m: Mapped[int] = mapped_column(BigInteger, default=0)
    purchases_12m: Mapped[int] = mapped_column(Integer, default=0)
    growth: Mapped[int] = mapped_column(BigInteger, default=0)
    window_month: Mapped[int] = mapped_column(Integer, default=0)  # YYYYMM the totals start at
    # HQ's override: the member is on override_code until override_until
    override_code: Mapped[str | None] = mapped_column(String(32))
    override_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    override_reason: Mapped[str | None] = mapped_column(String(255))
    override_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberTierMonth(db.Model):
    __tablename__ = "member_tier_months"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)  # YYYYMM, Asia/Shanghai
    payer_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    purchases: Mapped[int] = mapped_column(Integer, default=0)


class TierChange(db.Model):
    """The audit trail: every change of a member's tier, by whom and why."""

    __tablename__ = "tier_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    old_code: Mapped[str | None] = mapped_column(String(32))
    new_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(16))  # upgrade|review|manual|merge|ladder|expiry
    reach_no: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
