"""Points jobs: the expiry run and the expiry reminder list.

``expire_points`` is safe to run twice or concurrently and to stop half-way: every lot expires
through one ``expire`` entry keyed ``expire:lot:<id>``; members are taken in chunks (the
chunked-job framework, ``app.jobs.chunked``), each chunk one short transaction that locks its
accounts with ``SKIP LOCKED`` first and waits only for the few a payment holds, then expires
their due lots in slices of ``SLICE_LOTS``, one ``append_entries`` each (set-based: its
statements do not grow with the number of lots, and memory is bounded by the slice); a run
killed half-way carries on from its last chunk when started again with the same run key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, literal, select, tuple_

from app.common.clock import utcnow
from app.extensions import db
from app.jobs.chunked import ChunkedJob, Step, register, run_chunked
from app.members.models import Member
from app.points.models import PointsAccount, PointsLot
from app.points.services import Change, append_entries, lock_account


@dataclass
class ExpiryRun:
    members: int = 0
    lots: int = 0
    points: int = 0
    deferred: int = 0  # members another transaction held when their batch ran

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("members", "lots", "points", "deferred")}

    def add(self, lots: int, points: int) -> None:
        self.members += 1 if lots else 0
        self.lots += lots
        self.points += points


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return (PointsLot.remaining > 0, PointsLot.expires_at <= now)


# due lots expired per append_entries: a chunk's memory is bounded by this, not by how many
# lots its members hold (one member may hold thousands)
SLICE_LOTS = 2000


def _expiry_changes(
    member_ids: list[int], now: datetime, after: tuple[int, datetime, int] | None = None
) -> tuple[list[Change], tuple[int, datetime, int] | None]:
    """One ``expire`` change per due lot of the (locked) members, in one query, at most
    ``SLICE_LOTS`` of them after ``after`` (member, expiry, lot id); a member's lots soonest
    first, as they are expired. With the position of the last one, for the next slice."""
    if not member_ids:
        return [], None
    order = (PointsLot.member_id, PointsLot.expires_at, PointsLot.id)
    query = select(PointsLot.id, PointsLot.member_id, PointsLot.remaining, PointsLot.expires_at)
    query = query.where(PointsLot.member_id.in_(member_ids), *_due(now))
    if after is not None:
        bound = (literal(v, c.type) for v, c in zip(after, order, strict=True))
        query = query.where(tuple_(*order) > tuple_(*bound))
    due = db.session.execute(query.order_by(*order).limit(SLICE_LOTS)).all()
    last = (int(due[-1].member_id), due[-1].expires_at, int(due[-1].id)) if due else None
    changes = [
        Change(
            int(member_id),
            -int(remaining),
            "expire",
            f"expire:lot:{lot_id}",
            ref_type="lot",
            ref_id=str(lot_id),
            from_lot=int(lot_id),
            reason=f"points expired at {expires_at.isoformat() if expires_at else '-'}",
        )
        for lot_id, member_id, remaining, expires_at in due
    ]
    return changes, last


def _due_members(now: datetime, after: int, limit: int) -> list[int]:
    """Members with due lots after ``after``, in member id order (the expiry's keys)."""
    return list(
        db.session.scalars(
            select(PointsLot.member_id)
            .where(*_due(now), PointsLot.member_id > after)
            .group_by(PointsLot.member_id)
            .order_by(PointsLot.member_id)
            .limit(limit)
        )
    )


def _expire_range(now: datetime, lo: int, hi: int) -> dict[str, int]:
    """Expire the due lots of members ``lo..hi``, in the chunk's transaction. Accounts are
    locked with ``SKIP LOCKED`` first; the few a payment holds are then waited for, in id
    order, so the chunk never stalls on the first busy member. Then the chunk's due lots are read
    and expired ``SLICE_LOTS`` at a time, each slice one query and one ``append_entries``
    (set-based: a member's debits of named lots share one wave, so each account is written
    once a slice)."""
    member_ids = _due_members(now, lo - 1, hi - lo + 1)
    member_ids = [m for m in member_ids if m <= hi]
    locked = list(
        db.session.scalars(
            select(PointsAccount.member_id)
            .where(PointsAccount.member_id.in_(member_ids))
            .order_by(PointsAccount.member_id)
            .with_for_update(skip_locked=True)
        )
    )
    deferred = sorted(set(member_ids) - set(locked))
    for member_id in deferred:
        lock_account(member_id)
    run = ExpiryRun(deferred=len(deferred))
    expired: dict[int, tuple[int, int]] = {}  # member → (lots, points) expired now
    changes, after = _expiry_changes([*locked, *deferred], now)
    while changes:  # slice after slice, in (member, expiry, lot) order
        for change, appended in zip(changes, append_entries(changes), strict=True):
            if appended.created:
                lots, points = expired.get(change.member_id, (0, 0))
                expired[change.member_id] = (lots + 1, points - change.points)
        if len(changes) < SLICE_LOTS:
            break
        changes, after = _expiry_changes([*locked, *deferred], now, after)
    for lots, points in expired.values():
        run.add(lots, points)
    return run.as_dict()


EXPIRY = register(
    ChunkedJob(
        "points.expire",
        (Step("expire", _expire_range, keys=_due_members),),
        chunk_size=200,
        counters=("members", "lots", "points", "deferred"),
    )
)


def expire_points(
    now: datetime | None = None, batch_size: int = 0, run_key: str | None = None
) -> ExpiryRun:
    """Expire every lot whose expiry is at or before ``now`` (default: the clock's now).

    A chunked job (``app.jobs.chunked``): chunks of ``batch_size`` members (0: the job's
    default, or ``flask jobs run --chunk-size``), each its own
    transaction; ``run_key`` resumes or joins a run. Call it outside any unit of work.
    """
    counts = run_chunked(
        EXPIRY, now=now or utcnow(), run_key=run_key, chunk_size=batch_size or None
    )
    return ExpiryRun(**{k: counts.get(k, 0) for k in ("members", "lots", "points", "deferred")})


@dataclass(frozen=True)
class ExpiringPoints:
    member_id: int
    points: int
    expires_at: datetime  # the soonest expiry among them


def members_with_points_expiring(
    within_days: int = 30,
    *,
    now: datetime | None = None,
    exclude_opted_out: bool = False,
    after: int = 0,
    limit: int | None = None,
) -> list[ExpiringPoints]:
    """Members whose points expire in the next ``within_days`` days, for a reminder, in member
    id order: those with ids above ``after``, at most ``limit`` of them (a page: before a year
    end nearly every member is listed, so callers walking them all take pages).

    The reminder is a service message (the outbox's ``points_expiring`` is not marketing), so
    everyone is listed; ``exclude_opted_out`` leaves out members who opted out of marketing.
    """
    now = now or utcnow()
    until = now + timedelta(days=within_days)
    stmt = (
        select(
            PointsLot.member_id,
            func.sum(PointsLot.remaining),
            func.min(PointsLot.expires_at),
        )
        .join(Member, Member.id == PointsLot.member_id)
        .where(
            PointsLot.remaining > 0,
            PointsLot.expires_at > now,
            PointsLot.expires_at <= until,
            Member.status == "active",
            PointsLot.member_id > after,
        )
        .group_by(PointsLot.member_id)
        .order_by(PointsLot.member_id)
        .limit(limit)
    )
    if exclude_opted_out:
        stmt = stmt.where(Member.marketing_opt_out.is_(False))
    rows = db.session.execute(stmt).all()
    return [ExpiringPoints(int(m), int(p), e) for m, p, e in rows]


def expire_points_job(now: datetime | None = None) -> dict[str, int]:
    """The scheduled form of :func:`expire_points`: counts as a plain dict."""
    return expire_points(now=now, batch_size=0).as_dict()
