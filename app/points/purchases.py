"""Purchases and refunds: the one place money paid becomes points, and refunds take them back.

- :func:`record_purchases` records many purchases at once (a single one is a list of one),
  credits what they earn through ``credit_points``, fires ``PURCHASE_WAVE_APPLIED`` after
  each wave and ``PURCHASES_APPLIED`` once for the batch.
- :func:`record_refund` applies one refund: a purchase that earned ``E`` points on a refund
  base ``T`` keeps ``floor(E × (T − R) / T)`` after refunds totalling ``R``; each refund takes
  back the difference, never more than was earned.

Earn rule, in this order: the highest store / member-day multiplier rule in force
(``app.points.multipliers``), then every ``EARN_MULTIPLIERS`` provider (tiers, …) in
registration order; the points are ``floor(paid × POINTS_PER_YUAN / 100 × Π(percent / 100))``,
floored once. A member's purchases in one call are applied in list order, wave after wave, so
a provider that depends on the previous purchase (a tier crossed) sees it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, bindparam, select, update

from app.common.clock import utcnow
from app.common.hooks import (
    PURCHASE_WAVE_APPLIED,
    PURCHASES_APPLIED,
    EarnContext,
    PurchaseApplied,
    earn_multipliers,
)
from app.common.partitions import rows_by_key, where_key
from app.db import insert_rows
from app.errors import ValidationFailed
from app.extensions import db
from app.points.models import Purchase, PurchaseRefund
from app.points.multipliers import multipliers_for
from app.points.services import Credit, credit_points, earn_points, member_waves, post_entry


@dataclass(frozen=True)
class PurchaseIn:
    """One purchase to record: the payer's own money ``paid_fen`` of an order ``total_fen``."""

    source: str
    external_id: str
    member_id: int | None
    store_id: int | None
    paid_fen: int
    occurred_at: datetime
    total_fen: int | None = None  # None: the payer paid the whole order
    skus: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PurchaseOut:
    purchase_id: int
    member_id: int | None
    created: bool  # False: recorded before (a replay); nothing was credited now
    points_earned: int


def find_purchase(source: str, external_id: str, *, lock: bool = False) -> Purchase | None:
    dialect = db.session.get_bind().dialect.name
    stmt = where_key(
        select(Purchase), Purchase.__table__, dialect, source=source, external_id=external_id
    )
    if lock:
        stmt = stmt.with_for_update(of=Purchase)
    return db.session.execute(stmt).scalar_one_or_none()


def record_purchase(
    *,
    source: str,
    external_id: str,
    member_id: int | None,
    store_id: int | None,
    paid_fen: int,
    occurred_at: datetime,
    total_fen: int | None = None,
) -> tuple[Purchase, bool]:
    """:func:`record_purchases` for one purchase, answering the row: ``(purchase, created)``."""
    out = record_purchases(
        [PurchaseIn(source, external_id, member_id, store_id, paid_fen, occurred_at, total_fen)]
    )[0]
    purchase = db.session.get(Purchase, out.purchase_id, populate_existing=True)
    assert purchase is not None
    return purchase, out.created


def record_purchases(items: Sequence[PurchaseIn]) -> list[PurchaseOut]:
    """Record purchases once each and credit what they earn; results in order.

    Idempotent on (source, external id): a purchase recorded before answers ``created=False``
    and changes nothing (``INSERT … ON CONFLICT DO NOTHING``; a concurrent duplicate waits on
    the key until the first commits). Runs inside the caller's transaction; the caller holds
    the members' locks (``lock_members``). Core statements only.
    """
    for item in items:
        if item.paid_fen < 0 or (item.total_fen is not None and item.total_fen < item.paid_fen):
            raise ValidationFailed("paid amount is out of range", code="INVALID_AMOUNT")
    results: list[PurchaseOut | None] = [None] * len(items)
    applied: list[PurchaseApplied | None] = [None] * len(items)
    for wave in member_waves([i.member_id for i in items]):
        outs, wave_applied = _record_wave([items[i] for i in wave])
        for index, out, done in zip(wave, outs, wave_applied, strict=True):
            results[index] = out
            applied[index] = done
        PURCHASE_WAVE_APPLIED.fire([a for a in wave_applied if a is not None])
    PURCHASES_APPLIED.fire([a for a in applied if a is not None])
    return [r for r in results if r is not None]


def _percents(items: Sequence[PurchaseIn]) -> list[list[int]]:
    """Each item's multipliers: the store rule, then every provider's (members only)."""
    rule: dict[int, int] = {}
    by_store: dict[int | None, list[int]] = {}
    for index, item in enumerate(items):
        by_store.setdefault(item.store_id, []).append(index)
    for store_id, indexes in by_store.items():
        found = multipliers_for(store_id, [items[i].occurred_at for i in indexes])
        rule.update(zip(indexes, found, strict=True))
    members = [i for i, item in enumerate(items) if item.member_id is not None]
    extra = earn_multipliers(
        [EarnContext(items[i].member_id, items[i].store_id, items[i].occurred_at) for i in members]  # type: ignore[arg-type]
    )
    factors = {i: f for i, f in zip(members, extra, strict=True)}
    return [[rule[i], *factors.get(i, [])] for i in range(len(items))]


def _composed(percents: list[int]) -> int:
    value = 100
    for percent in percents:
        value = value * percent // 100
    return value


def _record_wave(
    items: Sequence[PurchaseIn],
) -> tuple[list[PurchaseOut], list[PurchaseApplied | None]]:
    """The wave's purchases recorded and credited; with each, what the hooks are told (None
    for a replay or a purchase without a member)."""
    now = utcnow()
    percents = _percents(items)
    rows = []
    for item, factors in zip(items, percents, strict=True):
        earned = earn_points(item.paid_fen, factors) if item.member_id is not None else 0
        total = item.paid_fen if item.total_fen is None else item.total_fen
        rows.append(
            {
                "source": item.source,
                "external_id": item.external_id,
                "member_id": item.member_id,
                "store_id": item.store_id,
                "paid_fen": item.paid_fen,
                "total_fen": total,
                "discount_fen": total - item.paid_fen,
                "multiplier_percent": _composed(factors),
                "refunded_fen": 0,
                "points_base": earned,
                "points_earned": earned,
                "occurred_at": item.occurred_at,
                "created_at": now,
            }
        )
    created = {
        (source, external_id): int(pk)
        for pk, source, external_id in insert_rows(
            Purchase.__table__,
            rows,
            returning=("id", "source", "external_id"),
            conflict=("source", "external_id"),
        )
    }
    missing = [(i.source, i.external_id) for i in items if (i.source, i.external_id) not in created]
    existing = {}
    if missing:
        existing = {
            (r.source, r.external_id): r
            for r in db.session.execute(
                rows_by_key(
                    Purchase.__table__,
                    (
                        Purchase.id,
                        Purchase.source,
                        Purchase.external_id,
                        Purchase.member_id,
                        Purchase.points_earned,
                    ),
                    {},
                    ("source", "external_id"),
                    sorted(set(missing)),
                    db.session.get_bind().dialect.name,
                )
            )
        }
    out: list[PurchaseOut] = []
    earning: list[tuple[PurchaseIn, dict, int]] = []
    for item, row in zip(items, rows, strict=True):
        key = (item.source, item.external_id)
        if key in created:
            out.append(PurchaseOut(created[key], item.member_id, True, row["points_earned"]))
            if item.member_id is not None and row["points_earned"] > 0:
                earning.append((item, row, created[key]))
        else:
            found = existing[key]
            out.append(PurchaseOut(found.id, found.member_id, False, int(found.points_earned)))
    credited = credit_points(
        [
            Credit(
                member_id=item.member_id,  # type: ignore[arg-type]
                points=row["points_earned"],
                kind="earn",
                idempotency_key=f"purchase:{pk}:earn",
                ref_type="purchase",
                ref_id=f"{item.source}:{item.external_id}",
                store_id=item.store_id,
                earned_at=min(item.occurred_at, now),
            )
            for item, row, pk in earning
        ]
    )
    balances = {pk: c.balance_after for (_, _, pk), c in zip(earning, credited, strict=True)}
    applied = [
        PurchaseApplied(
            member_id=item.member_id,
            purchase_id=o.purchase_id,
            source=item.source,
            occurred_at=item.occurred_at,
            payer_fen=item.paid_fen,
            points=o.points_earned,
            store_id=item.store_id,
            skus=item.skus,
            balance=balances.get(o.purchase_id),
        )
        if o.created and item.member_id is not None
        else None
        for item, o in zip(items, out, strict=True)
    ]
    return out, applied


def refund_base_fen(source: str, total_fen: int, paid_fen: int) -> int:
    """``T`` of the refund rule: the order total for payments (refunds are in order money),
    the money paid for till sales (a till's ``refund_fen`` is against ``paid_fen``)."""
    return paid_fen if source == "pos" else total_fen


@functools.cache
def _locked_purchase_stmt() -> Select:
    return (
        select(
            Purchase.id,
            Purchase.source,
            Purchase.member_id,
            Purchase.store_id,
            Purchase.paid_fen,
            Purchase.total_fen,
            Purchase.refunded_fen,
            Purchase.points_base,
            Purchase.points_earned,
            Purchase.occurred_at,
        )
        .where(Purchase.id == bindparam("purchase_id"))
        .with_for_update()
    )


def record_refund(
    purchase: Purchase | int,
    *,
    refund_key: str,
    refund_fen: int | None = None,
    refunded_total_fen: int | None = None,
    full: bool = False,
    occurred_at: datetime,
) -> tuple[PurchaseRefund | None, bool]:
    """Apply one refund of a purchase once. ``(refund, created)``.

    The amount is ``refund_fen`` (this refund alone: WeChat, till), or what
    ``refunded_total_fen`` (all refunds so far: Alipay's cumulative ``refund_fee``) adds to
    the refunds already applied, or, with ``full``, the whole remainder (a closed trade).
    ``(None, False)`` when nothing is left to refund. Runs in the caller's transaction.
    """
    purchase_id = purchase if isinstance(purchase, int) else purchase.id
    existing = db.session.execute(
        select(PurchaseRefund).where(PurchaseRefund.refund_key == refund_key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    p = db.session.execute(_locked_purchase_stmt(), {"purchase_id": purchase_id}).one()
    base = refund_base_fen(p.source, p.total_fen, p.paid_fen)
    if full:
        amount = base - p.refunded_fen
    elif refunded_total_fen is not None:
        amount = refunded_total_fen - p.refunded_fen
    else:
        amount = refund_fen or 0
        if amount <= 0:
            raise ValidationFailed("refund amount must be positive", code="INVALID_AMOUNT")
    if amount <= 0:
        return None, False  # covered by earlier refunds
    refunded = min(base, p.refunded_fen + amount)
    keep = (p.points_base * (base - refunded)) // base if base > 0 else 0
    take = max(0, p.points_earned - keep)
    refund = PurchaseRefund(
        purchase_id=p.id,
        refund_key=refund_key,
        refund_fen=amount,
        points_taken=take,
        occurred_at=occurred_at,
        created_at=utcnow(),
    )
    db.session.add(refund)
    db.session.flush()
    db.session.execute(
        update(Purchase)
        .where(Purchase.id == p.id)
        .values(refunded_fen=refunded, points_earned=p.points_earned - take)
    )
    loaded = db.session.identity_map.get(db.session.identity_key(Purchase, p.id))
    if loaded is not None:
        db.session.expire(loaded)
    if take and p.member_id is not None:
        post_entry(
            p.member_id,
            -take,
            kind="clawback",
            idempotency_key=f"refund:{refund.id}:clawback",
            ref_type="refund",
            ref_id=refund_key,
            store_id=p.store_id,
            allow_negative=True,
        )
    if p.member_id is not None:
        applied = [
            PurchaseApplied(
                member_id=p.member_id,
                purchase_id=p.id,
                source=p.source,
                occurred_at=occurred_at,
                payer_fen=-amount,
                points=-take,
                is_refund=True,
                store_id=p.store_id,
            )
        ]
        PURCHASE_WAVE_APPLIED.fire(applied)  # a refund is a wave of one
        PURCHASES_APPLIED.fire(applied)
    return refund, True


__all__ = [
    "PurchaseIn",
    "PurchaseOut",
    "find_purchase",
    "record_purchase",
    "record_purchases",
    "record_refund",
    "refund_base_fen",
]
