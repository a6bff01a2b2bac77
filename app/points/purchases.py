"""Points for money paid, and the refund rule shared by payment notifications and POS returns.

After any number of refunds a purchase keeps exactly what its net paid amount would have
earned (with the multiplier recorded on the purchase); each refund takes back the difference,
never more than was earned.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import make_transient_to_detached

from app.common.clock import utcnow
from app.common.hooks import PURCHASES_APPLIED, PurchaseApplied
from app.errors import ValidationFailed
from app.extensions import db
from app.outbox.services import enqueue_messages
from app.points.models import Purchase, PurchaseRefund
from app.points.multipliers import multiplier_for, multipliers_for
from app.points.services import (
    Credit,
    points_for_paid,
    post_credits,
    post_entry,
    post_new_credit,
)


def find_purchase(source: str, external_id: str, *, lock: bool = False) -> Purchase | None:
    stmt = select(Purchase).where(Purchase.source == source, Purchase.external_id == external_id)
    if lock:
        stmt = stmt.with_for_update()
    return db.session.execute(stmt).scalar_one_or_none()


def record_purchase(
    *,
    source: str,
    external_id: str,
    member_id: int | None,
    store_id: int | None,
    paid_fen: int,
    occurred_at: datetime,
) -> tuple[Purchase, bool]:
    """Record a paid purchase once and credit its points. ``(purchase, created)``.

    Points follow the multiplier rules in force for (store, occurred_at); their expiry counts
    from ``occurred_at`` (a sale uploaded late expires as if synced at once). A concurrent
    duplicate waits on the unique key and then finds the first one's row.
    """
    if paid_fen < 0:
        raise ValidationFailed("paid amount cannot be negative", code="INVALID_AMOUNT")
    percent = multiplier_for(store_id, occurred_at)
    earned = points_for_paid(paid_fen, percent) if member_id is not None else 0
    purchase = _insert_new(
        source=source,
        external_id=external_id,
        member_id=member_id,
        store_id=store_id,
        paid_fen=paid_fen,
        multiplier_percent=percent,
        refunded_fen=0,
        points_earned=earned,  # credited below, in this transaction
        occurred_at=occurred_at,
        created_at=utcnow(),
    )
    if purchase is None:
        existing = find_purchase(source, external_id)
        if existing is None:  # pragma: no cover - the conflicting row was committed
            raise RuntimeError(f"purchase {source}:{external_id} conflicted but is not found")
        return existing, False
    if member_id is not None and earned > 0:
        balance = post_new_credit(
            member_id,
            earned,
            kind="earn",
            idempotency_key=f"purchase:{purchase.id}:earn",
            ref_type="purchase",
            ref_id=f"{source}:{external_id}",
            store_id=store_id,
            earned_at=min(occurred_at, utcnow()),
        )
        enqueue_messages(
            [
                (
                    member_id,
                    "points_earned",
                    {"points": earned, "balance": balance, "paid_fen": paid_fen},
                    f"purchase:{purchase.id}:earned",
                )
            ],
            new_keys=True,
        )
    PURCHASES_APPLIED.fire(
        [
            PurchaseApplied(
                member_id, purchase.id, source, occurred_at, paid_fen, earned, store_id=store_id
            )
        ]
        if member_id is not None
        else []
    )
    return purchase, True


def _insert_new(**values: object) -> Purchase | None:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id``: the new purchase, or None if its
    (source, external_id) exists. A concurrent duplicate waits on the unique key until the
    first commits, then gets None (or inserts, if the first rolled back).

    A table-level insert (the ORM's bulk-insert machinery costs more than the statement); the
    row's values are all known, so the object is attached as already persistent, not reloaded.
    """
    stmt = _insert_new_stmt(db.session.get_bind().dialect.name, tuple(values))
    new_id = db.session.execute(stmt, values).scalar_one_or_none()
    if new_id is None:
        return None
    purchase = Purchase(id=new_id, **values)
    make_transient_to_detached(purchase)
    db.session.add(purchase)
    return purchase


@functools.cache
def _insert_new_stmt(dialect: str, columns: tuple[str, ...]) -> Insert:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = Purchase.__table__
    return (
        insert(table)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(table.c.id)
    )


@dataclass(frozen=True)
class PurchaseIn:
    """One purchase for ``record_purchases`` (the arguments ``record_purchase`` would get)."""

    external_id: str
    member_id: int | None
    store_id: int | None
    paid_fen: int
    occurred_at: datetime


def record_purchases(source: str, items: Sequence[PurchaseIn]) -> list[tuple[Purchase, bool]]:
    """``record_purchase`` for many purchases at once: same rules, same results, in order.

    For batches: one query finds those already recorded, one flush writes the new ones, and
    ``post_credits`` credits them. The caller must hold what serialises these external ids
    (the POS holds the sale keys' locks): a concurrent duplicate surfaces as ``IntegrityError``
    and the caller retries. ``add_purchases`` then ``credit_purchases`` do the same in two
    steps, so that a caller can write its own rows in between and lock the accounts last.
    """
    results = add_purchases(source, items)
    credit_purchases([p for p, created in results if created])
    return results


def add_purchases(source: str, items: Sequence[PurchaseIn]) -> list[tuple[Purchase, bool]]:
    """The first step of ``record_purchases``: the rows, with their multipliers, no points yet."""
    for item in items:
        if item.paid_fen < 0:
            raise ValidationFailed("paid amount cannot be negative", code="INVALID_AMOUNT")
    if not items:
        return []
    found = {
        p.external_id: p
        for p in db.session.scalars(
            select(Purchase).where(
                Purchase.source == source,
                Purchase.external_id.in_([i.external_id for i in items]),
            )
        )
    }
    by_store: dict[int | None, list[PurchaseIn]] = {}
    for item in items:
        by_store.setdefault(item.store_id, []).append(item)
    percents: dict[int, int] = {}
    for store_id, group in by_store.items():
        times = [i.occurred_at for i in group]
        for item, percent in zip(group, multipliers_for(store_id, times), strict=True):
            percents[id(item)] = percent
    results: list[tuple[Purchase, bool]] = []
    for item in items:
        existing = found.get(item.external_id)
        if existing is not None:
            results.append((existing, False))
            continue
        percent = percents[id(item)]
        purchase = Purchase(
            source=source,
            external_id=item.external_id,
            member_id=item.member_id,
            store_id=item.store_id,
            paid_fen=item.paid_fen,
            multiplier_percent=percent,
            refunded_fen=0,
            # what credit_purchases credits in this transaction (written once, not updated)
            points_earned=points_for_paid(item.paid_fen, percent) if item.member_id else 0,
            occurred_at=item.occurred_at,
        )
        db.session.add(purchase)
        found[item.external_id] = purchase
        results.append((purchase, True))
    db.session.flush()
    return results


def credit_purchases(purchases: Sequence[Purchase]) -> None:
    """The second step: credit what new purchases (from ``add_purchases``) earn, in one go."""
    now = utcnow()
    earning = []
    for purchase in purchases:
        earned = points_for_paid(purchase.paid_fen, purchase.multiplier_percent)
        if purchase.member_id is not None and earned > 0:
            earning.append((purchase, earned))
    posted = post_credits(
        [
            Credit(
                member_id=purchase.member_id,
                points=earned,
                kind="earn",
                idempotency_key=f"purchase:{purchase.id}:earn",
                ref_type="purchase",
                ref_id=f"{purchase.source}:{purchase.external_id}",
                store_id=purchase.store_id,
                earned_at=min(purchase.occurred_at, now),
            )
            for purchase, earned in earning
        ],
        new_keys=True,  # keys of the purchases add_purchases has just created
    )
    for purchase, earned in earning:
        purchase.points_earned = earned
    # the message record_purchase writes, with the balance right after each credit
    enqueue_messages(
        [
            (
                purchase.member_id,
                "points_earned",
                {"points": earned, "balance": r.entry.balance_after, "paid_fen": purchase.paid_fen},
                f"purchase:{purchase.id}:earned",
            )
            for (purchase, earned), r in zip(earning, posted, strict=True)
        ]
    )
    PURCHASES_APPLIED.fire(
        [
            PurchaseApplied(
                p.member_id,
                p.id,
                p.source,
                p.occurred_at,
                p.paid_fen,
                p.points_earned,
                store_id=p.store_id,
            )
            for p in purchases
            if p.member_id is not None
        ]
    )


def record_refund(
    purchase: Purchase, *, refund_key: str, refund_fen: int, occurred_at: datetime
) -> tuple[PurchaseRefund, bool]:
    """Apply one refund of a purchase once. ``(refund, created)``."""
    if refund_fen <= 0:
        raise ValidationFailed("refund amount must be positive", code="INVALID_AMOUNT")
    locked = find_purchase(purchase.source, purchase.external_id, lock=True)
    assert locked is not None
    existing = db.session.execute(
        select(PurchaseRefund).where(PurchaseRefund.refund_key == refund_key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    locked.refunded_fen = min(locked.paid_fen, locked.refunded_fen + refund_fen)
    target = points_for_paid(locked.paid_fen - locked.refunded_fen, locked.multiplier_percent)
    take = max(0, locked.points_earned - target)
    refund = PurchaseRefund(
        purchase_id=locked.id,
        refund_key=refund_key,
        refund_fen=refund_fen,
        points_taken=take,
        occurred_at=occurred_at,
    )
    db.session.add(refund)
    db.session.flush()
    if take and locked.member_id is not None:
        post_entry(
            locked.member_id,
            -take,
            kind="clawback",
            idempotency_key=f"refund:{refund.id}:clawback",
            ref_type="refund",
            ref_id=refund_key,
            store_id=locked.store_id,
            allow_negative=True,
        )
    locked.points_earned -= take
    PURCHASES_APPLIED.fire(
        [
            PurchaseApplied(
                locked.member_id,
                locked.id,
                locked.source,
                occurred_at,
                -refund_fen,
                -take,
                is_refund=True,
                store_id=locked.store_id,
            )
        ]
        if locked.member_id is not None
        else []
    )
    return refund, True
