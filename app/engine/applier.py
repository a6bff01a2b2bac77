"""The applier: journalled payments and refunds become members, purchases and points, once.

One set-based pass over a batch of journal rows (a single notification is a batch of one):

1. claim pending rows under the applier lock (a transaction advisory lock on PostgreSQL:
   several appliers may run for availability, one applies at a time, so batches follow
   journal order); a killed applier's transaction rolls back and its rows are pending again;
2. release refunds held for the payments of the batch (a refund whose payment had not
   arrived), placed right after their payment;
3. enrol every payer at once (``enrol``), find the purchases the refunds belong to, and lock
   the members (``lock_members``: id order, before any account);
4. split the events into waves in which each member (or, without one, each purchase) appears
   at most once, in journal order; apply wave after wave: payments through
   ``record_purchases`` (credits, messages, ``PURCHASES_APPLIED``), refunds through
   ``record_refund``. A member's events are therefore applied in the order they were stored,
   and a batch of 100 gives the ledger 100 single applications would;
5. mark the rows ``applied`` (or ``held``: a refund whose payment is not there yet).

Everything happens in one transaction run by ``app.db.transaction``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Row, Select, select, text, update

from app.common.clock import utcnow
from app.common.partitions import rows_by_key
from app.db import among, transaction
from app.engine.models import MoneyEvent
from app.errors import DomainError
from app.extensions import db
from app.members.payers import Payer, enrol
from app.members.services import lock_members
from app.payments.services import PaymentEvent, RefundEvent
from app.points.models import Purchase
from app.points.purchases import PurchaseIn, record_purchases, record_refund
from app.points.services import member_waves
from app.stores.models import Store

log = logging.getLogger(__name__)
BATCH = 500
# journal rows are read as columns (Core), never as ORM entities
_COLUMNS = (MoneyEvent.id, MoneyEvent.kind, MoneyEvent.purchase_key, MoneyEvent.payload)
_APPLIER_LOCK = text("SELECT pg_advisory_xact_lock(7261013)")  # "the applier" lock
# The claim starts at the first pending id, found by walking the pending index in order. Rows
# applied since the last VACUUM keep their entries in that partial index; a bitmap scan (the
# plan PostgreSQL picks for "all pending, sorted") visits each of them on every claim and
# marks none dead: with 26,000 applied rows an idle poll cost 4 ms of PostgreSQL CPU. The
# ordered walk marks the entries it passes dead, so the next scans of either kind skip them
# (0.1 ms).
_FIRST_PENDING = (
    select(MoneyEvent.id)
    .where(MoneyEvent.state == "pending")
    .order_by(MoneyEvent.id)
    .limit(1)
    .scalar_subquery()
)


@dataclass
class _Row:
    id: int
    event: PaymentEvent | RefundEvent
    purchase_key: str
    member_id: int | None = None
    purchase_id: int | None = None
    held: bool = False
    error: str | None = None


def apply_pending(
    *, limit: int = BATCH, ids: Sequence[int] | None = None, payer_keys: Sequence[str] = ()
) -> int:
    """Apply up to ``limit`` pending journal rows (only ``ids``, or only those of
    ``payer_keys``, when given) in one transaction; returns how many were taken."""
    if ids is not None and not ids:
        return 0
    try:
        return transaction(lambda: _apply_claimed(_claim(limit, ids, list(payer_keys))))
    except DomainError:
        # an event the rules refuse (a refund without an amount …) must not block the others:
        # apply the same rows one at a time, recording the refused one as rejected
        taken = transaction(lambda: [r.id for r in _claim(limit, ids, list(payer_keys))])
        for row_id in taken:
            try:
                transaction(lambda row_id=row_id: _apply_claimed(_claim(1, [row_id], [])))
            except DomainError as exc:
                transaction(lambda row_id=row_id, code=exc.code: _reject(row_id, code))
        return len(taken)


def _reject(row_id: int, code: str) -> None:
    log.warning("journal event %d rejected: %s", row_id, code)
    db.session.execute(
        update(MoneyEvent)
        .where(MoneyEvent.id == row_id, MoneyEvent.state.in_(("pending", "held")))
        .values(state="rejected", error_code=code[:48], applied_at=utcnow()),
        execution_options={"synchronize_session": False},
    )


def drain(*, limit: int = BATCH) -> int:
    """Apply pending rows batch after batch until none is left; returns how many."""
    total = 0
    while True:
        done = apply_pending(limit=limit)
        total += done
        if done < limit:
            return total


def _claim(limit: int, ids: Sequence[int] | None, payer_keys: list[str]) -> list[Row]:
    if db.session.get_bind().dialect.name == "postgresql":
        # one applier at a time (SQLite serialises writers anyway): batches are applied in
        # journal order, so a member's events keep their order across batches and a refund
        # marked held is committed before the next batch looks for refunds to release
        db.session.execute(_APPLIER_LOCK)
    stmt = select(*_COLUMNS).where(MoneyEvent.state == "pending")
    if ids is not None:
        stmt = stmt.where(among(MoneyEvent.id, ids))
    else:
        stmt = stmt.where(MoneyEvent.id >= _FIRST_PENDING)
    if payer_keys:
        stmt = stmt.where(among(MoneyEvent.payer_key, payer_keys))
    stmt = stmt.order_by(MoneyEvent.id).limit(limit).with_for_update(skip_locked=True)
    return list(db.session.execute(stmt))


def _parse(row: Row) -> PaymentEvent | RefundEvent:
    if row.kind == "payment":
        return PaymentEvent.from_payload(row.payload)
    return RefundEvent.from_payload(row.payload)


@functools.cache
def _held_stmt() -> Select:
    return (
        select(*_COLUMNS)
        .where(MoneyEvent.state == "held")
        .order_by(MoneyEvent.id)
        .with_for_update(skip_locked=True)
    )


def _apply_claimed(claimed: list[Row]) -> int:
    if not claimed:
        return 0
    rows = _ordered_rows(claimed)
    stores = _store_ids([r.event.store_code for r in rows if isinstance(r.event, PaymentEvent)])
    _resolve_members(rows, stores)
    payments_out: dict[str, int] = {}
    order = [r.member_id if r.member_id is not None else r.purchase_key for r in rows]
    keys = {k: i for i, k in enumerate(dict.fromkeys(order))}
    for wave in member_waves([keys[k] for k in order]):
        batch = [rows[i] for i in wave]
        payments = [r for r in batch if isinstance(r.event, PaymentEvent)]
        if payments:
            out = record_purchases(
                [
                    PurchaseIn(
                        source=r.event.source,
                        external_id=r.event.transaction_id,
                        member_id=r.member_id,
                        store_id=stores.get(r.event.store_code),  # type: ignore[union-attr]
                        paid_fen=r.event.paid_fen,  # type: ignore[union-attr]
                        total_fen=r.event.total_fen,  # type: ignore[union-attr]
                        occurred_at=r.event.occurred_at,
                    )
                    for r in payments
                ]
            )
            for r, o in zip(payments, out, strict=True):
                payments_out[r.purchase_key] = o.purchase_id
        for r in batch:
            if isinstance(r.event, RefundEvent):
                purchase_id = r.purchase_id or payments_out.get(r.purchase_key)
                if purchase_id is None:
                    r.held = True
                    continue
                try:
                    with db.session.begin_nested():  # a refund the rules refuse stands alone
                        record_refund(
                            purchase_id,
                            refund_key=r.event.refund_key,
                            refund_fen=r.event.refund_fen,
                            refunded_total_fen=r.event.refunded_total_fen,
                            full=r.event.full,
                            occurred_at=r.event.occurred_at,
                        )
                except DomainError as exc:
                    r.error = exc.code
    now = utcnow()
    applied = [r.id for r in rows if not r.held and r.error is None]
    held = [r.id for r in rows if r.held]
    for r in rows:
        if r.error is not None:
            _reject(r.id, r.error)
    if applied:
        db.session.execute(
            update(MoneyEvent)
            .where(among(MoneyEvent.id, applied))
            .values(state="applied", applied_at=now),
            execution_options={"synchronize_session": False},
        )
    if held:
        db.session.execute(
            update(MoneyEvent).where(among(MoneyEvent.id, held)).values(state="held"),
            execution_options={"synchronize_session": False},
        )
        log.info("%d refund(s) held until their payment arrives", len(held))
    return len(claimed)


def _ordered_rows(claimed: list[Row]) -> list[_Row]:
    """The batch in journal order, each payment followed by the refunds waiting for it (held
    before, or stored earlier in this batch)."""
    payment_keys = {r.purchase_key for r in claimed if r.kind == "payment"}
    waiting: dict[str, list[Row]] = {}
    if payment_keys:
        for row in db.session.execute(
            _held_stmt().where(among(MoneyEvent.purchase_key, sorted(payment_keys)))
        ):
            waiting.setdefault(row.purchase_key, []).append(row)
    paid_so_far: set[str] = set()
    rows: list[_Row] = []
    for row in claimed:
        if row.kind != "payment" and row.purchase_key in payment_keys - paid_so_far:
            waiting.setdefault(row.purchase_key, []).append(row)  # its payment comes later
            continue
        rows.append(_Row(row.id, _parse(row), row.purchase_key))
        if row.kind == "payment":
            paid_so_far.add(row.purchase_key)
            rows.extend(
                _Row(w.id, _parse(w), w.purchase_key) for w in waiting.pop(row.purchase_key, [])
            )
    return rows


def _resolve_members(rows: list[_Row], stores: dict[str | None, int]) -> None:
    """Each row's member: payers enrolled, refunds' purchases found; all locked in id order."""
    paying = [r for r in rows if isinstance(r.event, PaymentEvent) and r.event.payer]
    enrolled = enrol(
        [
            Payer(
                tuple(r.event.payer),  # type: ignore[union-attr]
                source=f"{r.event.source}_pay",
                store_id=stores.get(r.event.store_code),  # type: ignore[union-attr]
            )
            for r in paying
        ],
        lock=False,
    )
    for r, member_id in zip(paying, enrolled, strict=True):
        r.member_id = member_id
    by_key = {r.purchase_key: r.member_id for r in rows if isinstance(r.event, PaymentEvent)}
    wanted = {
        (r.event.source, r.event.transaction_id)
        for r in rows
        if isinstance(r.event, RefundEvent) and r.purchase_key not in by_key
    }
    found: dict[str, tuple[int, int | None]] = {}
    if wanted:
        for pk, source, external_id, member_id in db.session.execute(
            rows_by_key(
                Purchase.__table__,
                (Purchase.id, Purchase.source, Purchase.external_id, Purchase.member_id),
                {},
                ("source", "external_id"),
                sorted(wanted),
                db.session.get_bind().dialect.name,
            )
        ):
            found[f"{source}:{external_id}"] = (int(pk), member_id)
    for r in rows:
        if isinstance(r.event, RefundEvent):
            if r.purchase_key in found:
                r.purchase_id, r.member_id = found[r.purchase_key]
            else:
                r.member_id = by_key.get(r.purchase_key)
    live = lock_members({r.member_id for r in rows if r.member_id is not None})
    for r in rows:
        if r.member_id is not None:
            r.member_id = live[r.member_id]


def _store_ids(codes: Sequence[str | None]) -> dict[str | None, int]:
    wanted = sorted({c for c in codes if c})
    if not wanted:
        return {}
    return {
        code: pk
        for code, pk in db.session.execute(
            select(Store.code, Store.id).where(Store.code.in_(wanted))
        )
    }
