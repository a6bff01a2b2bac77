"""Coupon templates, the coupons issued from them, their history, gifts and POS redemptions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db
from app.stores.models import Store

TEMPLATE_KINDS = ("cash_off", "discount", "gift")
COUPON_STATES = ("available", "gifting", "held", "redeemed", "expired", "void")
_BigId = BigInteger().with_variant(Integer, "sqlite")


class CouponTemplate(db.Model):
    """What a coupon gives, how long it lasts, who may get it and how many exist."""

    __tablename__ = "coupon_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # cash_off | discount | gift
    value_fen: Mapped[int | None] = mapped_column(BigInteger)
    threshold_fen: Mapped[int | None] = mapped_column(BigInteger)
    percent_off: Mapped[int | None] = mapped_column(Integer)
    cap_fen: Mapped[int | None] = mapped_column(BigInteger)
    gift_sku: Mapped[str | None] = mapped_column(String(64))
    valid_days: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    giftable: Mapped[bool] = mapped_column(Boolean, default=False)
    regift_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    points_price: Mapped[int | None] = mapped_column(BigInteger)
    total_stock: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    issued_count: Mapped[int] = mapped_column(Integer, default=0)
    per_member_limit: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    welcome: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | paused
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    stores: Mapped[list[CouponTemplateStore]] = relationship(
        order_by="CouponTemplateStore.store_id", cascade="all, delete-orphan"
    )


class CouponTemplateStore(db.Model):
    """A store where a template's coupons may be used; a template with none applies everywhere."""

    __tablename__ = "coupon_template_stores"

    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)

    store: Mapped[Store] = relationship()


class Coupon(db.Model):
    """One coupon: an unguessable code, an owner and a state (see ``app.coupons.state``)."""

    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    issued_to_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="available")
    source: Mapped[str] = mapped_column(String(16))  # admin | welcome | exchange
    issue_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    gift_count: Mapped[int] = mapped_column(Integer, default=0)  # times it changed hands
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    redemption_id: Mapped[str | None] = mapped_column(String(128), index=True)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    redeemed_store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    sale_ref: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    template: Mapped[CouponTemplate] = relationship()
    events: Mapped[list[CouponEvent]] = relationship(order_by="CouponEvent.id", viewonly=True)
    pending_gift: Mapped[CouponGift | None] = relationship(
        primaryjoin="and_(CouponGift.coupon_id == Coupon.id, CouponGift.state == 'pending')",
        viewonly=True,
        uselist=False,
    )


class CouponEvent(db.Model):
    """One step in a coupon's life: who did what, when, from which store or channel."""

    __tablename__ = "coupon_events"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(ForeignKey("members.id"))  # owner after the step
    actor: Mapped[str] = mapped_column(String(64))  # member:12 | admin:ops | job | pos
    channel: Mapped[str] = mapped_column(String(16))  # admin | miniprogram | pos | job | merge
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    ref: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CouponGift(db.Model):
    """A gift link: ``pending`` → ``claimed`` | ``cancelled`` | ``returned``."""

    __tablename__ = "coupon_gifts"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"), index=True)
    giver_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    coupon: Mapped[Coupon] = relationship()


class CouponRedemption(db.Model):
    """Coupons held for one POS redemption: ``held`` → ``captured`` | ``released``."""

    __tablename__ = "coupon_redemptions"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    redemption_id: Mapped[str] = mapped_column(String(128), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    codes: Mapped[str] = mapped_column(String(2000))  # sorted, comma-separated
    order_total_fen: Mapped[int | None] = mapped_column(BigInteger)
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default="held")
    sale_ref: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WelcomeGrant(db.Model):
    """The one welcome coupon a person gets. Moves with the person on a member merge."""

    __tablename__ = "coupon_welcome_grants"
    __table_args__ = (UniqueConstraint("member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
