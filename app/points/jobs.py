"""Points jobs: the expiry run and the expiry reminder list.

``expire_points`` is safe to run twice or concurrently and to stop half-way: every lot expires
through one ``expire`` entry keyed ``expire:lot:<id>``; members are taken in batches, each batch
one short transaction that locks its accounts with ``SKIP LOCKED`` (a member busy in another
transaction is left for a blocking pass at the end, so a run never waits mid-batch); committed
batches stay done when a later one fails, and the next run picks up what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.common.clock import utcnow
from app.db import transaction
from app.extensions import db
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


def _expire_batch(member_ids: list[int], now: datetime) -> tuple[int, int, int, list[int]]:
    locked = list(
        db.session.scalars(
            select(PointsAccount.member_id)
            .where(PointsAccount.member_id.in_(member_ids))
            .order_by(PointsAccount.member_id)
            .with_for_update(skip_locked=True)
        )
    )
    members = lots = points = 0
    for member_id in locked:
        n, p = _expire_member(member_id, now)
        members += 1 if n else 0
        lots += n
        points += p
    return members, lots, points, sorted(set(member_ids) - set(locked))


def _expire_one(member_id: int, now: datetime) -> tuple[int, int]:
    lock_account(member_id)
    return _expire_member(member_id, now)


def expire_points(now: datetime | None = None, batch_size: int = 200) -> ExpiryRun:
    """Expire every lot whose expiry is at or before ``now`` (default: the clock's now).

    A job: it owns its transactions (one per batch), so call it outside any unit of work.
    """
    now = now or utcnow()
    run = ExpiryRun()
    deferred: list[int] = []
    after = 0
    while True:
        member_ids = list(
            db.session.scalars(
                select(PointsLot.member_id)
                .where(*_due(now), PointsLot.member_id > after)
                .group_by(PointsLot.member_id)
                .order_by(PointsLot.member_id)
                .limit(batch_size)
            )
        )
        db.session.rollback()  # end the read; each batch is its own transaction
        if not member_ids:
            break
        after = member_ids[-1]
        members, lots, points, skipped = transaction(lambda ids=member_ids: _expire_batch(ids, now))
        run.members += members
        run.lots += lots
        run.points += points
        deferred.extend(skipped)
    run.deferred = len(deferred)
    for member_id in deferred:
        lots, points = transaction(lambda m=member_id: _expire_one(m, now))
        run.add(lots, points)
    return run


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


def expire_points_job() -> dict[str, int]:
    """The scheduled form of :func:`expire_points`: counts as a plain dict."""
    return expire_points().as_dict()
