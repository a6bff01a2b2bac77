"""Members and the identities that lead to them: one person, one member, keyed by phone."""

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
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

IDENTITY_KINDS = (
    "phone",
    "wechat_openid",
    "wechat_unionid",
    "alipay_user_id",
    "alipay_open_id",
    "pos_card",
)


class Member(db.Model):
    __tablename__ = "members"
    __table_args__ = (
        # the few members no longer live (merged, erased): what counting live members leaves out
        Index(
            "ix_members_not_live",
            "id",
            postgresql_where=text("status <> 'active'"),
            sqlite_where=text("status <> 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    birthday: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|merged|erased
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    source: Mapped[str] = mapped_column(String(32))  # how the person first arrived
    join_store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    marketing_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    identities: Mapped[list[MemberIdentity]] = relationship(
        back_populates="member", order_by="MemberIdentity.id"
    )


class MemberIdentity(db.Model):
    """A (kind, app, external id) belongs to exactly one member: the unique constraint says so.

    ``app`` is the WeChat appid for per-app openids, and empty where the id is global.
    """

    __tablename__ = "member_identities"
    __table_args__ = (UniqueConstraint("kind", "app", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    app: Mapped[str] = mapped_column(String(64), default="")
    external_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(back_populates="identities")


class MemberMerge(db.Model):
    """One member absorbed into another: what moved, when, and why. Written once per absorbed."""

    __tablename__ = "member_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    absorbed_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(64))  # e.g. phone_binding:wechat
    moved: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


CONSENT_CHANNELS = ("pos", "wechat", "alipay", "import", "admin", "payment")


class MemberConsent(db.Model):
    """The member agreed to the brand's privacy policy (which version, when, through what) —
    recorded before their phone is stored. Kept after an erasure, without the phone."""

    __tablename__ = "member_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    policy_version: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # pos | wechat | alipay | import | …
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberErasure(db.Model):
    """The fact that a member's personal data was erased: who asked, when, what was forfeited."""

    __tablename__ = "member_erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)
    requested_by: Mapped[str] = mapped_column(String(16))  # member | admin
    actor: Mapped[str | None] = mapped_column(String(64))  # the admin token's name
    points_forfeited: Mapped[int] = mapped_column(BigInteger, default=0)
    coupons_voided: Mapped[int] = mapped_column(Integer, default=0)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberTokenRevocation(db.Model):
    """A member token that stopped working (logout), kept until it would have expired anyway."""

    __tablename__ = "member_token_revocations"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
