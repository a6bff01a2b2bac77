"""What we know about each member, kept as purchases arrive; segments, campaigns and journeys.

``member_stats`` has one row per member, written by the engine's hooks (never by rescanning
purchases); ``member_store_months`` holds visits and payer money per member, store and month,
from which the 12-month figures and the home store are derived.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

_BigId = BigInteger().with_variant(Integer, "sqlite")
STAGES = ("new", "active", "silent", "sleeping", "lost")


class IntelSettings(db.Model):
    """The brand's lifecycle thresholds in days (one row, id 1)."""

    __tablename__ = "intel_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    honeymoon_days: Mapped[int] = mapped_column(Integer, default=60)
    active_days: Mapped[int] = mapped_column(Integer, default=30)
    silent_days: Mapped[int] = mapped_column(Integer, default=90)
    sleeping_days: Mapped[int] = mapped_column(Integer, default=180)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberStats(db.Model):
    __tablename__ = "member_stats"
    __table_args__ = (
        Index("ix_member_stats_last_purchase_at", "last_purchase_at"),
        Index("ix_member_stats_lifecycle", "lifecycle"),
        Index("ix_member_stats_home_store_id", "home_store_id"),
    )

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    join_channel: Mapped[str] = mapped_column(String(16))  # payment|pos|miniprogram|gift|import
    join_store_id: Mapped[int | None] = mapped_column(Integer)
    first_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_store_id: Mapped[int | None] = mapped_column(Integer)
    purchase_count: Mapped[int] = mapped_column(Integer, default=0)
    payer_fen_total: Mapped[int] = mapped_column(BigInteger, default=0)
    # the 12 calendar months ending with the current one (Asia/Shanghai), from window_month on
    window_month: Mapped[date | None] = mapped_column(Date)
    purchases_12m: Mapped[int] = mapped_column(Integer, default=0)
    payer_fen_12m: Mapped[int] = mapped_column(BigInteger, default=0)
    home_store_id: Mapped[int | None] = mapped_column(Integer)
    lifecycle: Mapped[str] = mapped_column(String(12), default="new")
    lifecycle_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    r_score: Mapped[int | None] = mapped_column(SmallInteger)
    f_score: Mapped[int | None] = mapped_column(SmallInteger)
    m_score: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_label: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberStoreMonth(db.Model):
    """Visits and payer money of one member at one store (0: no store) in one calendar month."""

    __tablename__ = "member_store_months"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    payer_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class LifecycleEvent(db.Model):
    """A member moved from one lifecycle stage to another: journeys can start from it."""

    __tablename__ = "lifecycle_events"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(12))
    to_stage: Mapped[str] = mapped_column(String(12))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Segment(db.Model):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    rule: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SegmentExport(db.Model):
    """A CSV export of a segment's members, written by a job."""

    __tablename__ = "segment_exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"), index=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    reveal_phones: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str | None] = mapped_column(String(64))
    row_count: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Campaign(db.Model):
    """A one-off action for a segment: ``dry_run`` | ``scheduled`` → ``running`` → ``done``."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"), index=True)
    action: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(12), index=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    budget: Mapped[int | None] = mapped_column(Integer)  # most members acted on
    holdout_percent: Mapped[int] = mapped_column(Integer, default=0)
    attribution_days: Mapped[int] = mapped_column(Integer, default=14)
    targeted: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignTarget(db.Model):
    """One member of a campaign: ``pending`` → ``done`` | ``skipped`` (with why) | ``holdout``.

    The (campaign, member) key makes a member part of a campaign once; the action's own
    idempotency key (``campaign:<id>:member:<id>``) makes it act once.
    """

    __tablename__ = "campaign_targets"
    __table_args__ = (
        UniqueConstraint("campaign_id", "member_id"),
        Index("ix_campaign_targets_pending", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(String(40))
    acted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Journey(db.Model):
    """A trigger followed by timed steps ``[{day, action, condition}]``."""

    __tablename__ = "journeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(String(32), index=True)
    steps: Mapped[list] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    template: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JourneyEnrollment(db.Model):
    """A member entered a journey when its trigger happened (``trigger_key`` names that event)."""

    __tablename__ = "journey_enrollments"
    __table_args__ = (UniqueConstraint("journey_id", "member_id", "trigger_key"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    trigger_key: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JourneyStepRun(db.Model):
    """A step done (or skipped by its condition) for one enrollment: once, by its unique key."""

    __tablename__ = "journey_step_runs"
    __table_args__ = (UniqueConstraint("enrollment_id", "step"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("journey_enrollments.id"))
    step: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # done | skipped
    reason: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
