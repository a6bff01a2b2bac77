"""Points jobs: the expiry run and the expiry reminder list.

``expire_points`` is safe to run twice or concurrently and to stop half-way: every lot expires
through one ``expire`` entry keyed ``expire:lot:<id>``; members are taken in chunks (the
chunked-job framework, ``app.jobs.chunked``), each chunk one short transaction that locks its
accounts with ``SKIP LOCKED`` first and waits only for the few a payment holds; a run killed
half-way carries on from its last chunk when started again with the same run key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.common.clock import utcnow
from app.extensions import db
from app.jobs.chunked import ChunkedJob, Step, register, run_chunked
from app.members.models import Member
from app.points.models import PointsAccount, PointsLot
from app.points.services import lock_account, post_entry


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


def _expire_member(member_id: int, now: datetime) -> tuple[int, int]:
    """Expire a locked member's due lots. ``(lots, points)``."""
    due = db.session.scalars(
        select(PointsLot)
        .where(PointsLot.member_id == member_id, *_due(now))
        .order_by(PointsLot.expires_at, PointsLot.id)
        .execution_options(populate_existing=True)
    ).all()
    count = points = 0
    for lot in due:
        amount = lot.remaining
        result = post_entry(
            member_id,
            -amount,
            kind="expire",
            idempotency_key=f"expire:lot:{lot.id}",
            ref_type="lot",
            ref_id=str(lot.id),
            from_lot=lot.id,
            reason=f"points expired at {lot.expires_at.isoformat() if lot.expires_at else '-'}",
        )
        if result.created:
            count += 1
            points += amount
    return count, points


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
    order, so the chunk never stalls on the first busy member."""
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
    run = ExpiryRun(deferred=len(deferred))
    for member_id in locked:
        run.add(*_expire_member(member_id, now))
    for member_id in deferred:
        lock_account(member_id)
        run.add(*_expire_member(member_id, now))
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
    within_days: int = 30, *, now: datetime | None = None, exclude_opted_out: bool = False
) -> list[ExpiringPoints]:
    """Members whose points expire in the next ``within_days`` days, for a reminder.

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
        )
        .group_by(PointsLot.member_id)
        .order_by(PointsLot.member_id)
    )
    if exclude_opted_out:
        stmt = stmt.where(Member.marketing_opt_out.is_(False))
    rows = db.session.execute(stmt).all()
    return [ExpiringPoints(int(m), int(p), e) for m, p, e in rows]


def expire_points_job(now: datetime | None = None) -> dict[str, int]:
    """The scheduled form of :func:`expire_points`: counts as a plain dict."""
    return expire_points(now=now, batch_size=0).as_dict()
