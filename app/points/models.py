"""The points ledger: append-only entries and a cached balance that always equals their sum."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

ENTRY_KINDS = (
    "earn",
    "redeem",
    "hold",
    "release",
    "clawback",
    "return_of_redeemed",
    "expire",
    "adjust",
    "import",
    "merge_in",
    "merge_out",
    "exchange",
)


class PointsAccount(db.Model):
    """The cached balance of one member, changed only together with a ledger entry."""

    __tablename__ = "points_accounts"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsEntry(db.Model):
    """One change to a balance. Never updated or deleted; a repeat of its key changes nothing."""

    __tablename__ = "points_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    ref_type: Mapped[str | None] = mapped_column(String(24))
    ref_id: Mapped[str | None] = mapped_column(String(128))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    actor: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Purchase(db.Model):
    """Money a member paid, from a payment notification or a POS sale, and the points it keeps.

    ``points_earned`` is what the purchase currently keeps: with ``E`` = ``points_base``, ``T``
    its refund base (the order total for payments, the money paid for till sales) and ``R`` the
    refunds so far, ``floor(E × (T − R) / T)``.
    """

    __tablename__ = "purchases"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # wechat | alipay | pos
    external_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    # the payer's own money (WeChat cash_fee / payer_total, Alipay buyer_pay_amount, POS paid)
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    # the order total, and what the platform (vouchers, coupons) or the till's redemption
    # covered: total_fen = paid_fen + discount_fen
    total_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # the composed earn multiplier in force when it was paid (100 = ×1)
    multiplier_percent: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    # refunds so far, in the refund money of the source (see ``refund_base_fen``)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # E: the points the purchase earned when paid; points_earned = floor(E × (T − R) / T)
    points_base: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PurchaseRefund(db.Model):
    __tablename__ = "purchase_refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    refund_key: Mapped[str] = mapped_column(String(160), unique=True)
    refund_fen: Mapped[int] = mapped_column(BigInteger)
    points_taken: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsHold(db.Model):
    """Points set aside for a POS redemption: ``held`` → ``captured`` or ``released``."""

    __tablename__ = "points_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    hold_key: Mapped[str] = mapped_column(String(160), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    points: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="held")
    # points given back since capture because the sale was (partly) returned
    returned_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


_BIGINT_ID = BigInteger().with_variant(Integer, "sqlite")


class PointsLot(db.Model):
    """Spendable points from one credit, with their own expiry (``None``: never).

    ``remaining`` only goes down (spends, expiry, merge-out); a release or a merge creates new
    lots carrying the original expiry, pointing back at the lot they came from. Invariant per
    member: sum of ``remaining`` minus the debt (``max(0, -balance)``) equals the balance, and a
    member in debt holds no remaining lots.
    """

    __tablename__ = "points_lots"
    __table_args__ = (
        Index(
            "ix_points_lots_open",
            "member_id",
            "expires_at",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
        Index(
            "ix_points_lots_due",
            "expires_at",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(_BIGINT_ID, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    # the credit it came from; not indexed: nothing looks lots up by it (migration 0019)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("points_entries.id"))
    origin_lot_id: Mapped[int | None] = mapped_column(ForeignKey("points_lots.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    entry: Mapped[PointsEntry | None] = relationship()


class PointsLotConsumption(db.Model):
    """``points`` of one lot taken by one negative entry (spend, hold, expiry, merge-out…)."""

    __tablename__ = "points_lot_consumptions"

    id: Mapped[int] = mapped_column(_BIGINT_ID, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("points_lots.id"), index=True)
    points: Mapped[int] = mapped_column(BigInteger)

    entry: Mapped[PointsEntry] = relationship()
    lot: Mapped[PointsLot] = relationship()


class MultiplierRule(db.Model):
    """An earn multiplier (``percent``: 200 = double points) for purchases it matches.

    Bounded by ``starts_at`` ≤ occurred_at < ``ends_at``; ``store_id`` None means every store;
    ``day_of_month`` (local time) makes a member-day rule. The highest matching rule wins.
    """

    __tablename__ = "points_multiplier_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    percent: Mapped[int] = mapped_column(Integer)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    day_of_month: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
