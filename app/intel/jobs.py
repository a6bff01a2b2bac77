"""Nightly member intelligence: 12-month windows, lifecycle stages with time, RFM scores.

Each pass is set-based (a few SQL statements per chunk, no Python loop over members) and
chunked by member id ranges, each chunk its own transaction: a run stopped half-way leaves the
finished chunks done, and a re-run computes the same result.

RFM: over the *active* members, meaning those with a purchase in the 12-month window. R (how
recent the last purchase), F (purchases in 12 months) and M (payer money in 12 months) are
each scored by quintile: ``score = 1 + floor(5 × less / n)``, where ``less`` counts the active
members with a strictly lower value and ``n`` all active members, so equal values get equal
scores. A score of 3 or more is "high"; the label follows the usual eight groups.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, literal, select, update

from app.common.clock import utcnow
from app.db import unit_of_work
from app.extensions import db
from app.intel.journeys import enroll
from app.intel.models import Journey, LifecycleEvent, MemberStats, MemberStoreMonth
from app.intel.services import NO_STORE, day_start, get_settings, local_day, window_start

CHUNK = 100_000

LABELS = {
    (True, True, True): "重要价值客户",
    (False, True, True): "重要保持客户",
    (True, False, True): "重要发展客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (False, True, False): "一般保持客户",
    (True, False, False): "一般发展客户",
    (False, False, False): "一般挽留客户",
}


def _ranges(chunk: int) -> list[tuple[int, int]]:
    lo, hi = db.session.execute(
        select(func.min(MemberStats.member_id), func.max(MemberStats.member_id))
    ).one()
    if lo is None:
        return []
    return [(start, start + chunk) for start in range(lo, hi + 1, chunk)]


def refresh_windows(now: datetime, chunk: int = CHUNK) -> int:
    """Recompute 12-month figures and home stores of rows computed for an earlier window."""
    start = window_start(now)
    b = MemberStoreMonth
    in_window = (b.member_id == MemberStats.member_id) & (b.month >= start)
    visits = select(func.coalesce(func.sum(b.visits), 0)).where(in_window).scalar_subquery()
    money = select(func.coalesce(func.sum(b.payer_fen), 0)).where(in_window).scalar_subquery()
    home = (
        select(b.store_id)
        .where(in_window, b.store_id != NO_STORE, b.visits > 0)
        .group_by(b.store_id)
        .order_by(func.sum(b.visits).desc(), func.sum(b.payer_fen).desc(), b.store_id)
        .limit(1)
        .scalar_subquery()
    )
    changed = 0
    for lo, hi in _ranges(chunk):
        with unit_of_work():
            changed += db.session.execute(
                update(MemberStats)
                .where(
                    MemberStats.member_id >= lo,
                    MemberStats.member_id < hi,
                    (MemberStats.window_month < start) | MemberStats.window_month.is_(None),
                )
                .values(
                    purchases_12m=visits,
                    payer_fen_12m=money,
                    home_store_id=home,
                    window_month=start,
                ),
                execution_options={"synchronize_session": False},
            ).rowcount
    return changed


def stage_expression(now: datetime) -> Any:
    """The lifecycle stage of a stats row as SQL: the same rule as ``stage_for``."""
    s = get_settings()
    today = local_day(now)

    def since(days: int) -> datetime:
        return day_start(today - timedelta(days=days))

    m = MemberStats
    return case(
        ((m.purchase_count <= 0) | m.last_purchase_at.is_(None), "new"),
        ((m.purchase_count == 1) & (m.first_purchase_at >= since(s.honeymoon_days)), "new"),
        (m.last_purchase_at >= since(s.active_days), "active"),
        (m.last_purchase_at >= since(s.silent_days), "silent"),
        (m.last_purchase_at >= since(s.sleeping_days), "sleeping"),
        else_="lost",
    )


def move_stages(now: datetime, chunk: int = CHUNK) -> int:
    """Move members whose stage the passing of time changed; each move is an event."""
    stage = stage_expression(now)
    lifecycle_journeys = set(
        db.session.scalars(
            select(Journey.trigger).where(
                Journey.active.is_(True), Journey.trigger.like("lifecycle:%")
            )
        )
    )
    moved = 0
    for lo, hi in _ranges(chunk):
        where = (
            (MemberStats.member_id >= lo)
            & (MemberStats.member_id < hi)
            & (MemberStats.lifecycle != stage)
        )
        with unit_of_work():
            before = db.session.scalar(select(func.coalesce(func.max(LifecycleEvent.id), 0)))
            db.session.execute(
                insert(LifecycleEvent).from_select(
                    ["member_id", "from_stage", "to_stage", "at"],
                    select(
                        MemberStats.member_id,
                        MemberStats.lifecycle,
                        stage,
                        literal(now, LifecycleEvent.at.type),
                    ).where(where),
                )
            )
            n = db.session.execute(
                update(MemberStats).where(where).values(lifecycle=stage, lifecycle_since=now),
                execution_options={"synchronize_session": False},
            ).rowcount
            if not n:
                continue
            moved += n
            for trigger in lifecycle_journeys:
                events = db.session.execute(
                    select(LifecycleEvent.id, LifecycleEvent.member_id).where(
                        LifecycleEvent.id > before,
                        LifecycleEvent.to_stage == trigger.split(":", 1)[1],
                    )
                ).all()
                enroll(trigger, [(m, f"lc:{i}", now) for i, m in events])
    return moved


def _boundaries(column: Any, active: Any, n: int) -> list[Any]:
    """The values b1..b4 with ``score = 1 + #(value > b_k)``."""
    found = []
    for k in range(1, 5):
        offset = math.ceil(k * n / 5) - 1
        found.append(
            db.session.scalar(select(column).where(active).order_by(column).offset(offset).limit(1))
        )
    return found


def _score(column: Any, bounds: list[Any]) -> Any:
    expr: Any = literal(1)
    for b in bounds:
        expr = expr + case((column > b, 1), else_=0)
    return expr


def score_rfm(now: datetime, chunk: int = CHUNK) -> dict[str, Any]:
    m = MemberStats
    active = m.purchases_12m > 0
    n = db.session.scalar(select(func.count()).where(active)) or 0
    scored = 0
    if n:
        r = _score(m.last_purchase_at, _boundaries(m.last_purchase_at, active, n))
        f = _score(m.purchases_12m, _boundaries(m.purchases_12m, active, n))
        mm = _score(m.payer_fen_12m, _boundaries(m.payer_fen_12m, active, n))
        label = case(
            *[
                (
                    (r >= 3 if hi_r else r < 3)
                    & (f >= 3 if hi_f else f < 3)
                    & (mm >= 3 if hi_m else mm < 3),
                    text,
                )
                for (hi_r, hi_f, hi_m), text in LABELS.items()
            ]
        )
    for lo, hi in _ranges(chunk):
        in_chunk = (m.member_id >= lo) & (m.member_id < hi)
        with unit_of_work():
            if n:
                scored += db.session.execute(
                    update(m)
                    .where(
                        in_chunk,
                        active,
                        # only rows whose scores change: most stay put from one night to the next
                        m.r_score.is_distinct_from(r)
                        | m.f_score.is_distinct_from(f)
                        | m.m_score.is_distinct_from(mm),
                    )
                    .values(r_score=r, f_score=f, m_score=mm, rfm_label=label),
                    execution_options={"synchronize_session": False},
                ).rowcount
            db.session.execute(
                update(m)
                .where(in_chunk, ~active, m.r_score.is_not(None))
                .values(r_score=None, f_score=None, m_score=None, rfm_label=None),
                execution_options={"synchronize_session": False},
            )
    return {"rfm_members": n, "rfm_changed": scored}


def ensure_rows(now: datetime) -> int:
    """A stats row for every live member lacking one (imported members who have not bought
    yet): one ``INSERT … SELECT`` of the missing ones."""
    from app.members.models import Member
    from app.members.services import join_channel

    sources = db.session.scalars(
        select(Member.source)
        .where(
            Member.status == "active",
            ~select(MemberStats.member_id).where(MemberStats.member_id == Member.id).exists(),
        )
        .distinct()
    ).all()
    added = 0
    for source in sources:
        missing = select(
            Member.id,
            Member.created_at,
            literal(join_channel(source)),
            Member.join_store_id,
            literal(window_start(now)),
            Member.created_at,
            literal(now, MemberStats.updated_at.type),
            literal(0),
            literal(0),
            literal(0),
            literal(0),
            literal("new"),
        ).where(
            Member.status == "active",
            Member.source == source,
            ~select(MemberStats.member_id).where(MemberStats.member_id == Member.id).exists(),
        )
        with unit_of_work():
            added += max(
                db.session.execute(
                    insert(MemberStats).from_select(
                        [
                            "member_id",
                            "joined_at",
                            "join_channel",
                            "join_store_id",
                            "window_month",
                            "lifecycle_since",
                            "updated_at",
                            "purchase_count",
                            "payer_fen_total",
                            "purchases_12m",
                            "payer_fen_12m",
                            "lifecycle",
                        ],
                        missing,
                    )
                ).rowcount,
                0,
            )
    return added


def nightly(now: datetime | None = None) -> dict[str, Any]:
    """The ``intel.nightly`` job: missing rows, windows, then stages, then RFM."""
    now = now or utcnow()
    result: dict[str, Any] = {
        "rows_added": ensure_rows(now),
        "windows": refresh_windows(now),
        "stage_moves": move_stages(now),
    }
    result.update(score_rfm(now))
    return result


def run_campaigns(now: datetime | None = None, chunk: int = 500) -> dict[str, int]:
    from app.intel.campaigns import run_campaigns as run

    return run(now, chunk=chunk)


def run_journeys(now: datetime | None = None) -> dict[str, int]:
    from app.intel.journeys import run_journeys as run

    return run(now)


def segment_export(export_id: int) -> dict[str, int]:
    from app.intel.segments import write_export

    return write_export(export_id)


def rebuild_stats(chunk: int = 1000, now: datetime | None = None) -> dict[str, int]:
    """The ``intel.rebuild_stats`` job: every member's stats recomputed from the purchases.

    For a brand whose purchases predate the stats (run once after upgrading), or to check
    them. Chunk by chunk of member ids, each chunk one transaction that locks the members'
    stats rows first, so a purchase applied meanwhile either lands before (and is read) or
    waits and adds itself on top. Refunds count on their own month, as the listener does.
    """
    from collections import defaultdict

    from sqlalchemy import delete

    from app.common.upsert import upsert_add
    from app.intel.services import _ensure_rows, _lock_rows, month_of, refresh_window, restage
    from app.members.models import Member
    from app.points.models import Purchase, PurchaseRefund

    now = now or utcnow()
    rebuilt, after = 0, 0
    while True:
        ids = db.session.scalars(
            select(Member.id)
            .where(Member.id > after, Member.status == "active")
            .order_by(Member.id)
            .limit(chunk)
        ).all()
        if not ids:
            break
        after = ids[-1]
        with unit_of_work():
            _ensure_rows(ids)
            rows = _lock_rows(ids)
            buckets: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
            for row in rows.values():
                row.purchase_count, row.payer_fen_total = 0, 0
                row.first_purchase_at = row.last_purchase_at = row.last_store_id = None
            purchases = db.session.execute(
                select(
                    Purchase.member_id, Purchase.store_id, Purchase.paid_fen, Purchase.occurred_at
                )
                .where(Purchase.member_id.in_(ids))
                .order_by(Purchase.occurred_at, Purchase.id)
            ).all()
            for member_id, store_id, fen, at in purchases:
                row = rows[member_id]
                bucket = buckets[(member_id, store_id or 0, month_of(at))]
                bucket[0] += 1
                bucket[1] += fen
                row.purchase_count += 1
                row.payer_fen_total += fen
                row.first_purchase_at = row.first_purchase_at or at
                row.last_purchase_at, row.last_store_id = at, store_id
            refunds = db.session.execute(
                select(
                    Purchase.member_id,
                    Purchase.store_id,
                    PurchaseRefund.refund_fen,
                    PurchaseRefund.occurred_at,
                )
                .join(Purchase, Purchase.id == PurchaseRefund.purchase_id)
                .where(Purchase.member_id.in_(ids))
            ).all()
            for member_id, store_id, fen, at in refunds:
                buckets[(member_id, store_id or 0, month_of(at))][1] -= fen
                rows[member_id].payer_fen_total -= fen
            db.session.execute(delete(MemberStoreMonth).where(MemberStoreMonth.member_id.in_(ids)))
            upsert_add(
                MemberStoreMonth.__table__,
                [
                    {"member_id": m, "store_id": s, "month": mo, "visits": v, "payer_fen": f}
                    for (m, s, mo), (v, f) in buckets.items()
                ],
                ["member_id", "store_id", "month"],
                ["visits", "payer_fen"],
            )
            refresh_window(rows.values(), window_start(now))
            restage(rows.values(), now)
        rebuilt += len(ids)
    return {"members": rebuilt}
