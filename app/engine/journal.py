"""Storing verified money events: one ``INSERT … ON CONFLICT DO NOTHING`` per notification.

What a platform's ``SUCCESS`` acknowledges is this row, committed. Storing an event twice
stores it once (its ``event_key`` is the business id), so replays and concurrent duplicates
add nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection, Insert, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.common.clock import utcnow
from app.engine.models import MoneyEvent
from app.extensions import db
from app.members.payers import payer_key
from app.payments.services import MoneyEventIn, PaymentEvent


@functools.cache
def _insert_stmt(dialect: str) -> Insert:
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    table = MoneyEvent.__table__
    # on PostgreSQL the journal is partitioned: its keys table's trigger arbitrates the key
    target = None if dialect == "postgresql" else ["event_key"]
    return insert_(table).on_conflict_do_nothing(index_elements=target).returning(table.c.id)


def journal(events: Sequence[MoneyEventIn], conn: Connection | None = None) -> list[int]:
    """Store verified events; the ids of those new. One multi-row statement for them all.

    Runs in the caller's transaction: the session's, or ``conn`` (a Core connection, the
    notify path's: cheaper per request than the ORM session; an autocommit one makes the
    statement its own transaction). The caller commits before it acknowledges the
    notification.
    """
    if not events:
        return []
    now = utcnow()
    rows = []
    for event in events:
        payer = event.payer[0] if isinstance(event, PaymentEvent) and event.payer else None
        rows.append(
            {
                "event_key": event.event_key,
                "kind": "payment" if isinstance(event, PaymentEvent) else "refund",
                "source": event.source,
                "purchase_key": f"{event.source}:{event.transaction_id}",
                "payer_key": payer_key(payer) if payer else None,
                "payload": event.to_payload(),
                "state": "pending",
                "error_code": None,
                "received_at": now,
                "applied_at": None,
            }
        )
    run = conn.execute if conn is not None else db.session.execute
    stmt = _insert_stmt((conn.dialect if conn is not None else db.session.get_bind().dialect).name)
    return [int(i) for i in run(stmt, rows).scalars().all()]


def backlog() -> dict[str, float | int]:
    """The journal's backlog and apply lag.

    ``pending`` / ``held`` events, how long the oldest pending one has waited, and the apply
    lag (``applied_at − received_at``) p50 / p99 over the last 1,000 events applied in the
    last five minutes.
    """
    pending, oldest = db.session.execute(
        select(func.count(MoneyEvent.id), func.min(MoneyEvent.received_at)).where(
            MoneyEvent.state == "pending"
        )
    ).one()
    held = db.session.execute(
        select(func.count(MoneyEvent.id)).where(MoneyEvent.state == "held")
    ).scalar_one()
    age = 0.0
    if oldest is not None:
        age = max(0.0, (utcnow() - oldest).total_seconds())
    recent = db.session.execute(
        select(MoneyEvent.received_at, MoneyEvent.applied_at)
        .where(
            MoneyEvent.state == "applied",
            MoneyEvent.applied_at >= utcnow() - timedelta(minutes=5),
        )
        .order_by(MoneyEvent.applied_at.desc())
        .limit(1000)
    ).all()
    lags = sorted((a - r).total_seconds() for r, a in recent)
    return {
        "pending": int(pending),
        "held": int(held),
        "oldest_pending_seconds": round(age, 3),
        "apply_lag_p50_seconds": round(_percentile(lags, 0.5), 3),
        "apply_lag_p99_seconds": round(_percentile(lags, 0.99), 3),
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]
