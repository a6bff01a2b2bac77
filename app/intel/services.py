"""Member stats kept as purchases arrive, and the lifecycle stage they give.

The engine fires ``MEMBERS_JOINED`` and ``PURCHASES_APPLIED`` inside the transaction that
applies the event; the listeners here update ``member_stats`` in that same transaction, so a
purchase and what it changes in the stats commit (or roll back) together. Nothing here reads
the purchases table: the 12-month figures and the home store come from the member's own
``member_store_months`` rows (a few dozen at most).

Days and months are Asia/Shanghai calendar days and months.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Date, cast, delete, func, select

from app.common.clock import SHANGHAI, utcnow
from app.common.hooks import MemberJoined, PurchaseApplied
from app.common.upsert import insert_ignore, upsert_add
from app.db import among, execute_core, forget, per_transaction, update_rows
from app.errors import ValidationFailed
from app.extensions import db
from app.intel.models import IntelSettings, LifecycleEvent, MemberStats, MemberStoreMonth
from app.members.models import Member
from app.members.services import join_channel

NO_STORE = 0
SETTING_FIELDS = ("honeymoon_days", "active_days", "silent_days", "sleeping_days")
DEFAULTS = {"honeymoon_days": 60, "active_days": 30, "silent_days": 90, "sleeping_days": 180}


# --- calendar --------------------------------------------------------------------------------
def local_day(at: datetime) -> date:
    return at.astimezone(SHANGHAI).date()


def month_of(at: datetime) -> date:
    return local_day(at).replace(day=1)


def month_of_sql(column: Any) -> Any:
    """``month_of`` as SQL, for set-based passes: the first day of the Shanghai month of a
    UTC timestamp column (Shanghai keeps UTC+8 all year; SQLite stores naive UTC text)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.date_trunc("month", func.timezone("Asia/Shanghai", column)), Date)
    return func.date(column, "+8 hours", "start of month")


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def window_start(now: datetime) -> date:
    """The first month of the 12 calendar months ending with ``now``'s month."""
    return add_months(month_of(now), -11)


def day_start(day: date) -> datetime:
    """Midnight of a Shanghai day, in UTC."""
    return datetime.combine(day, time(0), tzinfo=SHANGHAI).astimezone(UTC)


# --- settings --------------------------------------------------------------------------------
def get_settings() -> IntelSettings:
    """The thresholds, read once per transaction (every wave of a batch restages)."""

    def load() -> IntelSettings:
        found = db.session.get(IntelSettings, 1)
        return found if found is not None else IntelSettings(id=1, **DEFAULTS)

    return per_transaction(_SETTINGS_KEY, load)


_SETTINGS_KEY = "huiyuan.intel.settings"


def update_settings(values: dict[str, int]) -> IntelSettings:
    """Change the thresholds; ``active < silent < sleeping`` must hold. Commits."""
    current = get_settings()
    merged = {name: values.get(name, getattr(current, name)) for name in SETTING_FIELDS}
    if not 0 <= merged["active_days"] < merged["silent_days"] < merged["sleeping_days"]:
        raise ValidationFailed(
            "thresholds must grow: active_days < silent_days < sleeping_days",
            code="INVALID_THRESHOLDS",
            details={"silent_days": ["between active_days and sleeping_days"]},
        )
    row = db.session.get(IntelSettings, 1)
    if row is None:
        row = IntelSettings(id=1)
        db.session.add(row)
    for name, value in merged.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    forget(_SETTINGS_KEY)
    db.session.commit()
    return row


# --- lifecycle -------------------------------------------------------------------------------
def stage_for(
    settings: IntelSettings,
    today: date,
    purchase_count: int,
    first_at: datetime | None,
    last_at: datetime | None,
) -> str:
    """``new``: no purchase yet, or one purchase within the honeymoon window. Otherwise by the
    days since the last purchase: up to ``active_days`` active, up to ``silent_days`` silent,
    up to ``sleeping_days`` sleeping, beyond that lost."""
    if purchase_count <= 0 or last_at is None or first_at is None:
        return "new"
    if purchase_count == 1 and (today - local_day(first_at)).days <= settings.honeymoon_days:
        return "new"
    days = (today - local_day(last_at)).days
    if days <= settings.active_days:
        return "active"
    if days <= settings.silent_days:
        return "silent"
    if days <= settings.sleeping_days:
        return "sleeping"
    return "lost"


def restage(rows: Iterable[MemberStats | SimpleNamespace], now: datetime) -> list[LifecycleEvent]:
    """Put each row in its stage now; a change is recorded as an event and starts journeys."""
    settings = get_settings()
    today = local_day(now)
    events = []
    for row in rows:
        stage = stage_for(
            settings, today, row.purchase_count, row.first_purchase_at, row.last_purchase_at
        )
        if stage != row.lifecycle:
            events.append(
                LifecycleEvent(
                    member_id=row.member_id, from_stage=row.lifecycle, to_stage=stage, at=now
                )
            )
            row.lifecycle = stage
            row.lifecycle_since = now
    if events:
        db.session.add_all(events)
        db.session.flush()
        from app.intel.journeys import enroll

        for stage in {e.to_stage for e in events}:
            enroll(
                f"lifecycle:{stage}",
                [(e.member_id, f"lc:{e.id}", e.at) for e in events if e.to_stage == stage],
            )
    return events


# --- stats rows ------------------------------------------------------------------------------
def _ensure_rows(member_ids: Sequence[int]) -> None:
    """Stats rows for members that joined before stats were kept (from the member row)."""
    have = set(
        db.session.scalars(
            select(MemberStats.member_id).where(among(MemberStats.member_id, member_ids))
        )
    )
    missing = [m for m in member_ids if m not in have]
    if not missing:
        return
    now = utcnow()
    members = db.session.execute(
        select(Member.id, Member.created_at, Member.source, Member.join_store_id).where(
            among(Member.id, missing)
        )
    ).all()
    insert_ignore(
        MemberStats.__table__,
        [
            _new_row(m.id, m.created_at, join_channel(m.source), m.join_store_id, now)
            for m in members
        ],
        ["member_id"],
    )


def _new_row(
    member_id: int, joined_at: datetime, channel: str, store_id: int | None, now: datetime
) -> dict:
    return {
        "member_id": member_id,
        "joined_at": joined_at,
        "join_channel": channel,
        "join_store_id": store_id,
        "purchase_count": 0,
        "payer_fen_total": 0,
        "purchases_12m": 0,
        "payer_fen_12m": 0,
        "window_month": window_start(now),
        "lifecycle": "new",
        "lifecycle_since": joined_at,
        "updated_at": now,
    }


def _lock_rows(member_ids: Sequence[int]) -> dict[int, MemberStats]:
    rows = db.session.scalars(
        select(MemberStats)
        .where(among(MemberStats.member_id, sorted(member_ids)))
        .order_by(MemberStats.member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.member_id: row for row in rows}


def _locked_stats(member_ids: Sequence[int]) -> dict[int, SimpleNamespace]:
    """The members' stats rows, locked in id order, as plain objects (Core, no ORM identity
    map: they are changed in Python and written back by one ``update_rows``). Rows missing
    (members who joined before stats were kept) are made first."""
    table = MemberStats.__table__

    def locked(ids: Sequence[int]) -> Any:
        return execute_core(
            select(table)
            .where(among(table.c.member_id, ids))
            .order_by(table.c.member_id)
            .with_for_update()
        )

    rows = {r.member_id: SimpleNamespace(**r._mapping) for r in locked(member_ids)}
    if len(rows) < len(member_ids):
        missing = [m for m in member_ids if m not in rows]
        _ensure_rows(missing)
        rows.update((r.member_id, SimpleNamespace(**r._mapping)) for r in locked(missing))
    return rows


def refresh_window(rows: Iterable[MemberStats | SimpleNamespace], start: date) -> None:
    """12-month visits, payer money and home store from the members' monthly rows."""
    by_id = {row.member_id: row for row in rows}
    if not by_id:
        return
    totals: dict[int, list[int]] = {m: [0, 0] for m in by_id}
    best: dict[int, tuple[int, int, int]] = {}
    grouped = db.session.execute(
        select(
            MemberStoreMonth.member_id,
            MemberStoreMonth.store_id,
            func.sum(MemberStoreMonth.visits),
            func.sum(MemberStoreMonth.payer_fen),
        )
        .where(among(MemberStoreMonth.member_id, by_id), MemberStoreMonth.month >= start)
        .group_by(MemberStoreMonth.member_id, MemberStoreMonth.store_id)
    ).all()
    for member_id, store_id, visits, fen in grouped:
        totals[member_id][0] += int(visits or 0)
        totals[member_id][1] += int(fen or 0)
        if store_id == NO_STORE or not visits:
            continue
        # most visits; then most money; then the lowest store id
        candidate = (int(visits), int(fen or 0), -store_id)
        if member_id not in best or candidate > best[member_id]:
            best[member_id] = candidate
    for member_id, row in by_id.items():
        row.purchases_12m, row.payer_fen_12m = totals[member_id]
        row.home_store_id = -best[member_id][2] if member_id in best else None
        row.window_month = start


# --- listeners -------------------------------------------------------------------------------
def on_members_joined(items: Sequence[MemberJoined]) -> None:
    now = utcnow()
    rows = [
        _new_row(i.member_id, i.joined_at, join_channel(i.channel), i.store_id, now) for i in items
    ]
    insert_ignore(MemberStats.__table__, rows, ["member_id"])
    from app.intel.journeys import enroll

    enroll("joined", [(i.member_id, "joined", i.joined_at) for i in items])


# what a purchase or refund changes in a member's stats row
_PURCHASE_FIELDS = (
    "purchase_count",
    "payer_fen_total",
    "first_purchase_at",
    "last_purchase_at",
    "last_store_id",
    "window_month",
    "purchases_12m",
    "payer_fen_12m",
    "home_store_id",
    "lifecycle",
    "lifecycle_since",
    "updated_at",
)


def on_purchases_applied(items: Sequence[PurchaseApplied]) -> None:
    """Fold purchases and refunds into the members' stats, in the applying transaction: the
    rows are locked and read once, changed in Python and written back by one statement."""
    by_member: dict[int, list[PurchaseApplied]] = defaultdict(list)
    for item in items:
        if item.member_id is not None:
            by_member[item.member_id].append(item)
    if not by_member:
        return
    rows = _locked_stats(sorted(by_member))
    buckets: dict[tuple[int, int, date], list[int]] = defaultdict(lambda: [0, 0])
    first_buyers = []
    for member_id, events in by_member.items():
        row = rows[member_id]
        had_purchase = row.purchase_count > 0
        for e in events:
            key = (member_id, e.store_id or NO_STORE, month_of(e.occurred_at))
            buckets[key][1] += e.payer_fen
            row.payer_fen_total += e.payer_fen
            if e.is_refund:
                continue
            buckets[key][0] += 1
            row.purchase_count += 1
            if row.first_purchase_at is None or e.occurred_at < row.first_purchase_at:
                row.first_purchase_at = e.occurred_at
            if row.last_purchase_at is None or e.occurred_at >= row.last_purchase_at:
                row.last_purchase_at = e.occurred_at
                row.last_store_id = e.store_id
        if not had_purchase and row.purchase_count > 0:
            first_buyers.append((member_id, "first_purchase", row.first_purchase_at))
    upsert_add(
        MemberStoreMonth.__table__,
        [
            {"member_id": m, "store_id": s, "month": mo, "visits": v, "payer_fen": f}
            for (m, s, mo), (v, f) in buckets.items()
        ],
        ["member_id", "store_id", "month"],
        ["visits", "payer_fen"],
    )
    now = utcnow()
    refresh_window(rows.values(), window_start(now))
    for row in rows.values():
        row.updated_at = now
    restage(rows.values(), now)
    update_rows(
        MemberStats.__table__,
        "member_id",
        [{c: getattr(row, c) for c in ("member_id", *_PURCHASE_FIELDS)} for row in rows.values()],
    )
    if first_buyers:
        from app.intel.journeys import enroll

        enroll("first_purchase", first_buyers)


def on_member_merge(absorbed_id: int, survivor_id: int) -> None:
    """MERGE_STEPS: the survivor's stats become those of both; the absorbed row goes."""
    _ensure_rows([absorbed_id, survivor_id])
    rows = _lock_rows([absorbed_id, survivor_id])
    gone, kept = rows[absorbed_id], rows[survivor_id]
    moved = (
        db.session.execute(
            select(MemberStoreMonth).where(MemberStoreMonth.member_id == absorbed_id)
        )
        .scalars()
        .all()
    )
    upsert_add(
        MemberStoreMonth.__table__,
        [
            {
                "member_id": survivor_id,
                "store_id": b.store_id,
                "month": b.month,
                "visits": b.visits,
                "payer_fen": b.payer_fen,
            }
            for b in moved
        ],
        ["member_id", "store_id", "month"],
        ["visits", "payer_fen"],
    )
    db.session.execute(delete(MemberStoreMonth).where(MemberStoreMonth.member_id == absorbed_id))
    kept.purchase_count += gone.purchase_count
    kept.payer_fen_total += gone.payer_fen_total
    if gone.joined_at < kept.joined_at:
        kept.joined_at, kept.join_channel = gone.joined_at, gone.join_channel
        kept.join_store_id = gone.join_store_id
    if gone.first_purchase_at and (
        kept.first_purchase_at is None or gone.first_purchase_at < kept.first_purchase_at
    ):
        kept.first_purchase_at = gone.first_purchase_at
    if gone.last_purchase_at and (
        kept.last_purchase_at is None or gone.last_purchase_at > kept.last_purchase_at
    ):
        kept.last_purchase_at, kept.last_store_id = gone.last_purchase_at, gone.last_store_id
    db.session.delete(gone)
    db.session.flush()
    now = utcnow()
    refresh_window([kept], window_start(now))
    kept.updated_at = now
    restage([kept], now)


def member_stats(member_id: int) -> MemberStats | None:
    return db.session.get(MemberStats, member_id)


def rfm_of(stats: MemberStats | None) -> dict | None:
    """``{r, f, m, label}``, or None for a member not scored (no purchase in 12 months)."""
    if stats is None or stats.r_score is None:
        return None
    return {"r": stats.r_score, "f": stats.f_score, "m": stats.m_score, "label": stats.rfm_label}


def lifecycle_of(member_id: int) -> str:
    stats = member_stats(member_id)
    return stats.lifecycle if stats is not None else "new"


def register_hooks() -> None:
    from app.common.hooks import MEMBERS_JOINED, PURCHASES_APPLIED
    from app.members.merge import register_merge_step

    MEMBERS_JOINED.register(on_members_joined)
    PURCHASES_APPLIED.register(on_purchases_applied)
    register_merge_step(on_member_merge)


def days_ago_start(now: datetime, days: int) -> datetime:
    """The earliest instant whose Shanghai day is at most ``days`` days before ``now``'s."""
    return day_start(local_day(now) - timedelta(days=days))
