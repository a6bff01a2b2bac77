"""One card per member per platform, and what the platform was last told."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

CARD_PLATFORMS = ("wechat", "alipay")
# opening → active → deleted (the member removed it in the wallet) | retired (merged away)
CARD_STATES = ("opening", "active", "deleted", "retired")


class MemberCard(db.Model):
    __tablename__ = "member_cards"
    __table_args__ = (
        UniqueConstraint("member_id", "platform"),
        UniqueConstraint("platform", "card_no"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    # our membership number: WeChat's custom card code, Alipay's external_card_no
    card_no: Mapped[str] = mapped_column(String(32))
    template_id: Mapped[str] = mapped_column(String(64))  # WeChat card_id / Alipay template id
    platform_card_no: Mapped[str | None] = mapped_column(String(64))  # Alipay biz_card_no
    state: Mapped[str] = mapped_column(String(16), default="opening")
    level: Mapped[str | None] = mapped_column(String(64))  # the member's tier, shown on the card
    synced_points: Mapped[int | None] = mapped_column()  # the points the platform last accepted
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
