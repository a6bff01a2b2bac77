"""The KPI rollup: new rows of members, purchases, refunds, points entries and coupon events
folded into ``kpi_daily`` counters, every minute.

Each source is read past a cursor (its last id), in chunks, and each chunk is one transaction
that moves the counters and the cursor together, so a chunk is counted once even if the job
dies. Ids that were missing when a later id was read (a transaction that committed late) are
looked up again for ``GAP_TTL`` seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select

from app.common.clock import utcnow
from app.common.upsert import upsert_add
from app.db import insert_rows, unit_of_work
from app.extensions import db
from app.intel.models import MemberStats
from app.intel.services import day_start, local_day
from app.members.services import join_channel
from app.reports.models import (
    BRAND,
    COUNTERS,
    KpiClerkDaily,
    KpiDaily,
    MemberVisitDay,
    RollupCursor,
)

# rows per transaction: what bounds memory (a chunk's counters span at most 2 × CHUNK day-store
# rows, with the brand's). Peak RSS of a process rolling up 1 M purchases of 13 months (app
# alone 128 MB): 322 MB at 20,000 reading visit days back, 191 MB at 20,000 claiming them,
# 155 MB at 5,000, 142 MB at 2,000 (bench/jobs_memory.py)
CHUNK = 2_000
GAP_TTL = 600
MAX_GAPS = 5000

ISSUED = {"earn", "clawback", "adjust"}
SPENT = {"hold", "release", "return_of_redeemed", "redeem", "exchange"}
EXPIRED = {"expire"}

Counters = dict[tuple[date, int], list[int]]  # (day, store) → values in ``COUNTERS`` order
SLOT = {name: i for i, name in enumerate(COUNTERS)}
FLUSH_ROWS = 1000  # counter rows per upsert statement


def _counters() -> Counters:
    return defaultdict(lambda: [0] * len(COUNTERS))


def _add(counters: Counters, day: date, store_id: int | None, **values: int) -> None:
    """Count at the store and for the brand (a store-less row counts for the brand only)."""
    for target in {BRAND, store_id or BRAND}:
        row = counters[(day, target)]
        for name, value in values.items():
            row[SLOT[name]] += value


def _flush(counters: Counters) -> None:
    """Add the counters to ``kpi_daily``, ``FLUSH_ROWS`` rows a statement (the parameters of
    one statement, not of the whole chunk, are built at a time)."""
    keys = list(counters)
    for start in range(0, len(keys), FLUSH_ROWS):
        upsert_add(
            KpiDaily.__table__,
            [
                {"day": d, "store_id": s, **dict(zip(COUNTERS, counters[(d, s)], strict=True))}
                for d, s in keys[start : start + FLUSH_ROWS]
            ],
            ["day", "store_id"],
            COUNTERS,
        )


def _cursor(name: str) -> RollupCursor:
    cursor = db.session.execute(
        select(RollupCursor).where(RollupCursor.name == name).with_for_update()
    ).scalar_one_or_none()
    if cursor is None:
        cursor = RollupCursor(name=name, last_id=0, gaps={})
        db.session.add(cursor)
        db.session.flush()
    return cursor


def _read(
    name: str, table: Any, columns: list[Any], now: datetime
) -> tuple[RollupCursor, list[Any]]:
    """New rows past the cursor (and late rows filling earlier gaps); moves the cursor."""
    cursor = _cursor(name)
    id_col = table.c.id
    rows = list(
        db.session.execute(
            select(*columns).where(id_col > cursor.last_id).order_by(id_col).limit(CHUNK)
        ).all()
    )
    gaps = {int(k): v for k, v in (cursor.gaps or {}).items()}
    if gaps:
        late = db.session.execute(select(*columns).where(id_col.in_(list(gaps)))).all()
        for row in late:
            gaps.pop(row.id, None)
        rows.extend(late)
    stamp = now.timestamp()
    previous = cursor.last_id
    for row in sorted(rows, key=lambda r: r.id):
        if row.id > cursor.last_id:
            for missing in range(previous + 1, row.id):
                if len(gaps) < MAX_GAPS:
                    gaps[missing] = stamp
            previous = cursor.last_id = row.id
    cursor.gaps = {str(k): v for k, v in gaps.items() if stamp - v < GAP_TTL}
    cursor.updated_at = now
    return cursor, rows


def _members(now: datetime) -> int:
    from app.members.models import Member

    _, rows = _read(
        "members",
        Member.__table__,
        [Member.id, Member.created_at, Member.source, Member.join_store_id],
        now,
    )
    counters = _counters()
    for row in rows:
        channel = join_channel(row.source)
        if channel == "import":
            continue  # moved from another system: not a new member
        values = {"new_members": 1}
        if f"new_{channel}" in COUNTERS:
            values[f"new_{channel}"] = 1
        _add(counters, local_day(row.created_at), row.join_store_id, **values)
    _flush(counters)
    return len(rows)


def _first_purchases(member_ids: Iterable[int]) -> dict[int, datetime | None]:
    ids = list(set(member_ids))
    found: dict[int, datetime | None] = {}
    for i in range(0, len(ids), 5000):
        found.update(
            db.session.execute(
                select(MemberStats.member_id, MemberStats.first_purchase_at).where(
                    MemberStats.member_id.in_(ids[i : i + 5000])
                )
            ).all()
        )
    return found


def _returning(first: datetime | None, day: date) -> bool:
    """A customer from before this day: the first purchase was on an earlier day."""
    return first is not None and first < day_start(day)


def _sales(
    fen: int, member_id: int | None, first: dict[int, datetime | None], day: date
) -> dict[str, int]:
    """The sales counters a sale (or, negative, a refund of it) moves on the sale's ``day``:
    the one rule both use, so a day's member and returning sales never exceed its sales."""
    values = {"sales_fen": fen}
    if member_id is not None:
        values["member_sales_fen"] = fen
        if _returning(first.get(member_id), day):
            values["returning_sales_fen"] = fen
    return values


def _purchases(now: datetime) -> int:
    from app.points.models import Purchase

    _, rows = _read(
        "purchases",
        Purchase.__table__,
        [
            Purchase.id,
            Purchase.member_id,
            Purchase.store_id,
            Purchase.paid_fen,
            Purchase.occurred_at,
        ],
        now,
    )
    if not rows:
        return 0
    first = _first_purchases(r.member_id for r in rows if r.member_id is not None)
    counters = _counters()
    visits: dict[tuple[int, int, date], bool] = {}
    for row in rows:
        day = local_day(row.occurred_at)
        values = _sales(row.paid_fen, row.member_id, first, day)
        if row.member_id is not None:
            for store in {BRAND, row.store_id or BRAND}:
                visits[(row.member_id, store, day)] = "returning_sales_fen" in values
        _add(counters, day, row.store_id, purchases=1, **values)
    if visits:
        # the visits new to ``member_visit_days``: claimed by the insert itself (a key already
        # there is skipped), so nothing of the table is read back and memory stays the chunk's
        fresh = insert_rows(
            MemberVisitDay.__table__,
            [{"member_id": m, "store_id": s, "day": d} for m, s, d in visits],
            returning=("member_id", "store_id", "day"),
            conflict=("member_id", "store_id", "day"),
        )
        for member_id, store, day in fresh:
            row = counters[(day, store)]
            row[SLOT["active_members"]] += 1
            if visits[(member_id, store, day)]:
                row[SLOT["returning_members"]] += 1
    _flush(counters)
    return len(rows)


def _refunds(now: datetime) -> int:
    from app.points.models import Purchase, PurchaseRefund

    _, rows = _read(
        "refunds",
        PurchaseRefund.__table__,
        [
            PurchaseRefund.id,
            PurchaseRefund.purchase_id,
            PurchaseRefund.refund_fen,
            PurchaseRefund.occurred_at,
        ],
        now,
    )
    if not rows:
        return 0
    purchases = {
        p.id: p
        for p in db.session.execute(
            select(Purchase.id, Purchase.member_id, Purchase.store_id, Purchase.occurred_at).where(
                Purchase.id.in_({r.purchase_id for r in rows})
            )
        ).all()
    }
    first = _first_purchases(p.member_id for p in purchases.values() if p.member_id is not None)
    counters = _counters()
    for row in rows:
        # a refund comes off the sale it returns, on that sale's day and on the same sides
        # (member, returning) the sale was counted: booked on the refund's own day, a refund
        # of another day's non-member sale took total sales below member sales (shares > 1)
        p = purchases[row.purchase_id]
        day = local_day(p.occurred_at)
        _add(counters, day, p.store_id, **_sales(-row.refund_fen, p.member_id, first, day))
    _flush(counters)
    return len(rows)


def _points(now: datetime) -> int:
    from app.points.models import PointsEntry

    _, rows = _read(
        "points",
        PointsEntry.__table__,
        [
            PointsEntry.id,
            PointsEntry.kind,
            PointsEntry.points,
            PointsEntry.store_id,
            PointsEntry.created_at,
        ],
        now,
    )
    counters = _counters()
    for row in rows:
        if row.kind in ISSUED:
            values = {"points_issued": row.points}
        elif row.kind in SPENT:
            values = {"points_spent": -row.points}
        elif row.kind in EXPIRED:
            values = {"points_expired": -row.points}
        else:
            continue
        _add(counters, local_day(row.created_at), row.store_id, **values)
    _flush(counters)
    return len(rows)


def _coupons(now: datetime) -> int:
    from app.coupons.models import Coupon, CouponEvent

    _, rows = _read(
        "coupon_events",
        CouponEvent.__table__,
        [
            CouponEvent.id,
            CouponEvent.kind,
            CouponEvent.channel,
            CouponEvent.store_id,
            CouponEvent.coupon_id,
            CouponEvent.to_state,
            CouponEvent.owner_id,
            CouponEvent.created_at,
        ],
        now,
    )
    expired = [
        r for r in rows if r.kind == "expired" or (r.to_state == "expired" and r.kind != "redeemed")
    ]
    homes: dict[int, int | None] = {}
    if expired:
        homes = dict(
            db.session.execute(
                select(Coupon.id, MemberStats.home_store_id)
                .join(MemberStats, MemberStats.member_id == Coupon.owner_id, isouter=True)
                .where(Coupon.id.in_({r.coupon_id for r in expired}))
            ).all()
        )
    counters = _counters()
    _gift_joins([r for r in rows if r.kind == "gift_claimed"], counters)
    for row in rows:
        day = local_day(row.created_at)
        if row.kind == "redeemed":
            name = (
                "coupons_redeemed_offline"
                if row.channel in ("pos", "clerk")
                else "coupons_redeemed_online"
            )
            _add(counters, day, row.store_id, **{name: 1})
        elif row.to_state == "expired":
            _add(counters, day, homes.get(row.coupon_id), coupons_expired=1)
    _flush(counters)
    return len(rows)


GIFT_JOIN_WINDOW = timedelta(minutes=30)


def _gift_joins(claims: list[Any], counters: Counters) -> None:
    """A person who joined in the mini-program to claim a gifted coupon joined by ``gift``:
    their join (already counted as ``miniprogram``) moves to the ``gift`` channel."""
    if not claims:
        return
    stats = {
        s.member_id: s
        for s in db.session.scalars(
            select(MemberStats)
            .where(MemberStats.member_id.in_({c.owner_id for c in claims}))
            .order_by(MemberStats.member_id)  # the listeners' lock order
            .with_for_update()
        )
    }
    for claim in claims:
        s = stats.get(claim.owner_id)
        if s is None or s.join_channel != "miniprogram":
            continue
        if not timedelta(0) <= claim.created_at - s.joined_at <= GIFT_JOIN_WINDOW:
            continue
        s.join_channel = "gift"
        _add(counters, local_day(s.joined_at), s.join_store_id, new_miniprogram=-1, new_gift=1)


def _clerks(now: datetime) -> int:
    """New members per clerk, recounted from the attributions for the days since the last
    run's day before (the first run counts them all)."""
    from app.clerks.models import MemberAttribution

    today = local_day(now)
    cursor = _cursor("clerks")
    first = (
        date.fromordinal(cursor.last_id) - timedelta(days=1) if cursor.last_id else date(2000, 1, 1)
    )
    cursor.last_id = today.toordinal()
    cursor.updated_at = now
    start, end = day_start(first), day_start(today + timedelta(days=1))
    db.session.execute(delete(KpiClerkDaily).where(KpiClerkDaily.day >= first))
    counted: dict[tuple[date, int], list[int]] = {}
    for clerk_id, store_id, at in db.session.execute(
        select(
            MemberAttribution.clerk_id, MemberAttribution.store_id, MemberAttribution.attributed_at
        ).where(MemberAttribution.attributed_at >= start, MemberAttribution.attributed_at < end)
    ):
        entry = counted.setdefault((local_day(at), clerk_id), [store_id, 0])
        entry[1] += 1
    if counted:
        db.session.execute(
            insert(KpiClerkDaily.__table__),
            [
                {"day": d, "clerk_id": c, "store_id": s, "new_members": n}
                for (d, c), (s, n) in counted.items()
            ],
        )
    return len(counted)


SOURCES: tuple[tuple[str, Callable[[datetime], int]], ...] = (
    ("members", _members),
    ("purchases", _purchases),
    ("refunds", _refunds),
    ("points", _points),
    ("coupon_events", _coupons),
)


def rollup(now: datetime | None = None, *, max_chunks: int = 1000) -> dict[str, int]:
    """The ``reports.rollup`` job: every source up to date, chunk by chunk."""
    now = now or utcnow()
    done: dict[str, int] = {}
    for name, fold in SOURCES:
        total = 0
        for _ in range(max_chunks):
            with unit_of_work():
                n = fold(now)
            total += n
            if n < CHUNK:
                break
        done[name] = total
    with unit_of_work():
        done["clerk_days"] = _clerks(now)
    return done
