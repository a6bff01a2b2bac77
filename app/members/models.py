"""Members and the identities that lead to them: one person, one member, keyed by phone."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, String, UniqueConstraint
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

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    birthday: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | merged
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
