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
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    Float,
    String,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.types import NullType

from app.common.clock import utcnow
from app.common.upsert import insert_statement
from app.db import unit_of_work
from app.extensions import db
from app.intel.models import (
    Journey,
    JourneyEnrollment,
    LifecycleEvent,
    MemberStats,
    MemberStoreMonth,
)
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
    """Recompute 12-month figures and home stores of rows computed for an earlier window.

    Per chunk of member ids, set-based: the chunk's monthly rows in the window are summed per
    member and store, ranked per member (most visits, then most money, then the lowest store
    id: the rule ``services.refresh_window`` applies to one member), and one ``UPDATE … FROM``
    writes the members who have such rows; a second writes zeros for those who have none."""
    start = window_start(now)
    b, m = MemberStoreMonth, MemberStats
    stale = (m.window_month < start) | m.window_month.is_(None)
    changed = 0
    for lo, hi in _ranges(chunk):
        in_chunk = (m.member_id >= lo) & (m.member_id < hi)
        if not db.session.scalar(select(exists().where(in_chunk, stale))):
            continue  # most nights: every row is already on this month's window
        per_store = (
            select(
                b.member_id,
                b.store_id,
                func.sum(b.visits).label("visits"),
                func.sum(b.payer_fen).label("fen"),
            )
            .where(b.member_id >= lo, b.member_id < hi, b.month >= start)
            .group_by(b.member_id, b.store_id)
            .subquery()
        )
        p = per_store.c
        eligible = (p.store_id != NO_STORE) & (p.visits > 0)
        ranked = select(
            p.member_id,
            func.sum(p.visits).over(partition_by=p.member_id).label("visits"),
            func.sum(p.fen).over(partition_by=p.member_id).label("fen"),
            case((eligible, p.store_id), else_=None).label("home"),
            func.row_number()
            .over(
                partition_by=p.member_id,
                order_by=(case((eligible, 0), else_=1), p.visits.desc(), p.fen.desc(), p.store_id),
            )
            .label("rank"),
        ).subquery()
        with unit_of_work():
            changed += db.session.execute(
                update(m)
                .where(in_chunk, stale, m.member_id == ranked.c.member_id, ranked.c.rank == 1)
                .values(
                    purchases_12m=ranked.c.visits,
                    payer_fen_12m=ranked.c.fen,
                    home_store_id=ranked.c.home,
                    window_month=start,
                ),
                execution_options={"synchronize_session": False},
            ).rowcount
            changed += db.session.execute(
                update(m)
                .where(in_chunk, stale)
                .values(purchases_12m=0, payer_fen_12m=0, home_store_id=None, window_month=start),
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


def _rfm_bounds(active: Any) -> tuple[int, dict[str, list[Any]]]:
    """The active members' count and, per column, the values b1..b4 at the quintile positions
    ``ceil(k × n / 5)`` (k = 1..4) of its ascending order: ``score = 1 + #(value > b_k)``."""
    m = MemberStats
    n = db.session.scalar(select(func.count()).where(active)) or 0
    columns = {"r": m.last_purchase_at, "f": m.purchases_12m, "m": m.payer_fen_12m}
    if not n:
        return 0, {}
    positions = [math.ceil(k * n / 5) for k in range(1, 5)]
    if db.session.get_bind().dialect.name == "postgresql":
        # one scan, one sort per column; (p − ½) / n makes PostgreSQL's ceil(f × n) land on p
        # exactly, whatever the float rounding
        fractions = literal([(p - 0.5) / n for p in positions], ARRAY(Float))
        row = db.session.execute(
            select(
                *[
                    type_coerce(func.percentile_disc(fractions).within_group(c), NullType())
                    for c in columns.values()
                ]
            ).where(active)
        ).one()
        return n, dict(zip(columns, (list(v) for v in row), strict=True))
    return n, {
        key: [
            db.session.scalar(select(c).where(active).order_by(c).offset(p - 1).limit(1))
            for p in positions
        ]
        for key, c in columns.items()
    }


def _score(column: Any, bounds: list[Any]) -> Any:
    expr: Any = literal(1)
    for b in bounds:
        expr = expr + case((column > b, 1), else_=0)
    return expr


def _enroll_moves(after_id: int) -> None:
    """Members whose stage moved (events after ``after_id``) enter the journeys that start
    from their new stage: one ``INSERT … SELECT``, once per event whatever re-runs happen."""
    e, j = LifecycleEvent, Journey
    rows = (
        select(j.id, e.member_id, literal("lc:") + cast(e.id, String), e.at)
        .join(j, (j.trigger == literal("lifecycle:") + e.to_stage) & j.active.is_(True))
        .where(e.id > after_id)
    )
    stmt = insert_statement(JourneyEnrollment.__table__).from_select(
        ["journey_id", "member_id", "trigger_key", "started_at"], rows
    )
    db.session.execute(
        stmt.on_conflict_do_nothing(index_elements=["journey_id", "member_id", "trigger_key"])
    )


def stage_and_score(now: datetime, chunk: int = CHUNK) -> dict[str, Any]:
    """Lifecycle stages moved by time, and RFM scores, in one pass over the member ids.

    RFM boundaries come first, from the whole brand. Then per chunk of member ids, one
    transaction of three set-based statements: the stage moves as events; one ``UPDATE``
    writing stage and scores of the rows where either changes (a row is written at most once
    a night, and not at all when nothing changed); the journey enrollments of the moves."""
    m = MemberStats
    stage = stage_expression(now)
    active = m.purchases_12m > 0
    n, bounds = _rfm_bounds(active)
    if n:
        r = case((active, _score(m.last_purchase_at, bounds["r"])), else_=None)
        f = case((active, _score(m.purchases_12m, bounds["f"])), else_=None)
        mm = case((active, _score(m.payer_fen_12m, bounds["m"])), else_=None)
        # a score is 3 or more exactly when the value is above b2
        high = (
            m.last_purchase_at > bounds["r"][1],
            m.purchases_12m > bounds["f"][1],
            m.payer_fen_12m > bounds["m"][1],
        )
        label = case(
            *[
                (
                    active
                    & (high[0] if hi_r else ~high[0])
                    & (high[1] if hi_f else ~high[1])
                    & (high[2] if hi_m else ~high[2]),
                    text,
                )
                for (hi_r, hi_f, hi_m), text in LABELS.items()
            ],
            else_=None,
        )
    else:
        r = f = mm = label = null()
    moves = m.lifecycle != stage
    rescored = (
        m.r_score.is_distinct_from(r)
        | m.f_score.is_distinct_from(f)
        | m.m_score.is_distinct_from(mm)
    )
    since = case((moves, literal(now, m.lifecycle_since.type)), else_=m.lifecycle_since)
    moved = written = 0
    for lo, hi in _ranges(chunk):
        in_chunk = (m.member_id >= lo) & (m.member_id < hi)
        with unit_of_work():
            before = db.session.scalar(select(func.coalesce(func.max(LifecycleEvent.id), 0)))
            added = db.session.execute(
                insert(LifecycleEvent).from_select(
                    ["member_id", "from_stage", "to_stage", "at"],
                    select(
                        m.member_id, m.lifecycle, stage, literal(now, LifecycleEvent.at.type)
                    ).where(in_chunk, moves),
                ),
                execution_options={"preserve_rowcount": True},
            ).rowcount
            written += db.session.execute(
                update(m)
                .where(in_chunk, moves | rescored)
                .values(
                    lifecycle=stage,
                    lifecycle_since=since,
                    r_score=r,
                    f_score=f,
                    m_score=mm,
                    rfm_label=label,
                ),
                execution_options={"synchronize_session": False},
            ).rowcount
            if added > 0:
                moved += added
                _enroll_moves(before)
    return {"stage_moves": moved, "rfm_members": n, "rows_written": written}


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
                    ),
                    execution_options={"preserve_rowcount": True},
                ).rowcount,
                0,
            )
    return added


def refresh_planner_statistics() -> None:
    """``VACUUM (ANALYZE) member_stats`` on PostgreSQL, right after a night that wrote rows.

    A night can move most members to another stage: until the table is analysed again the
    planner believes yesterday's stages and plans segment counts on them (a scan of every
    member by the stage index where the home-store index selects 2 %). Vacuuming also marks
    the space of the rows' old versions reusable, so the next night writes into it instead of
    growing the table."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    db.session.commit()
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM (ANALYZE) member_stats")
        )


def nightly(now: datetime | None = None) -> dict[str, Any]:
    """The ``intel.nightly`` job: missing rows, windows, then stages and RFM (with the seconds
    each pass took)."""
    now = now or utcnow()
    began = time.monotonic()
    result: dict[str, Any] = {"rows_added": ensure_rows(now)}
    seconds = {"rows": time.monotonic() - began}
    result["windows"] = refresh_windows(now)
    seconds["windows"] = time.monotonic() - began - sum(seconds.values())
    result.update(stage_and_score(now))
    seconds["stages_and_rfm"] = time.monotonic() - began - sum(seconds.values())
    if result["rows_written"] or result["windows"] or result["rows_added"]:
        refresh_planner_statistics()
        seconds["vacuum_analyze"] = time.monotonic() - began - sum(seconds.values())
    result["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    return result


def run_campaigns(now: datetime | None = None, chunk: int = 500) -> dict[str, int]:
    from app.intel.campaigns import run_campaigns as run

    return run(now, chunk=chunk)


def run_journeys(now: datetime | None = None, chunk: int = 500) -> dict[str, int]:
    from app.intel.journeys import run_journeys as run

    return run(now, chunk=chunk)


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
