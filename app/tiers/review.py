"""The scheduled review and the re-evaluation after a ladder change, set-based per chunk.

Per chunk of member ids, in its own transaction:

1. months that left the rolling window are subtracted from the totals (``UPDATE … SET total =
   total − (SELECT SUM … of the dropped months)``) and their buckets deleted: no purchase is
   read, and a concurrent purchase (which only touches months still in the window) is never
   lost;
2. members still qualifying for their tier after their keep period get a new keep period;
3. the few rows that change are read: expired overrides, members whose basis earns more (a
   lowered threshold) and members past their keep period whose basis earns less; the latter
   step down at most ``review_max_steps`` tiers, and start a new keep period on the lower tier.

Nobody is demoted before their keep period ends, so a ladder change re-evaluates with the same
code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from app.db import transaction
from app.extensions import db
from app.tiers.ladder import Ladder, add_months, basis_value, load_ladder, window_start
from app.tiers.models import MemberTier, MemberTierMonth, Tier
from app.tiers.services import (
    _ROW_COLUMNS,
    _Decision,
    _upgrade,
    effective_code,
    override_active,
    write_decisions,
)

CHUNK = 5000


def review_all(
    now: datetime,
    *,
    reason: str = "review",
    after: int = 0,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Review every member row with id above ``after``, chunk by chunk (resumable)."""
    counts = {"members": 0, "changed": 0}
    while True:
        ids = list(
            db.session.scalars(
                select(MemberTier.member_id)
                .where(MemberTier.member_id > after)
                .order_by(MemberTier.member_id)
                .limit(chunk)
            )
        )
        db.session.rollback()
        if not ids:
            return counts
        lo, hi = ids[0], ids[-1]
        changed = transaction(lambda lo=lo, hi=hi: review_chunk(lo, hi, now, reason))
        counts["members"] += len(ids)
        counts["changed"] += changed
        after = hi
        if progress is not None:
            progress(hi, len(ids))


def review_chunk(lo: int, hi: int, now: datetime, reason: str) -> int:
    ladder = load_ladder()
    in_chunk = and_(MemberTier.member_id >= lo, MemberTier.member_id <= hi)
    _drop_old_months(in_chunk, lo, hi, window_start(now))
    if ladder is None:
        return 0
    value = getattr(MemberTier, ladder.basis)
    earned_rank = select(func.max(Tier.rank)).where(Tier.threshold <= value).scalar_subquery()
    own_rank = select(Tier.rank).where(Tier.code == MemberTier.tier_code).scalar_subquery()
    db.session.execute(
        update(MemberTier)
        .where(in_chunk, MemberTier.keep_until <= now, earned_rank == own_rank)
        .values(keep_until=add_months(now, ladder.keep_months))
        .execution_options(synchronize_session=False)
    )
    rows = db.session.execute(
        select(*_ROW_COLUMNS)
        .where(
            in_chunk,
            or_(
                and_(MemberTier.override_code.is_not(None), MemberTier.override_until <= now),
                own_rank.is_(None),
                earned_rank > own_rank,
                and_(
                    or_(MemberTier.keep_until.is_(None), MemberTier.keep_until <= now),
                    earned_rank < own_rank,
                ),
            ),
        )
        .order_by(MemberTier.member_id)
    ).all()
    decisions = [d for d in (_decide(r, ladder, now) for r in rows) if d is not None]
    return write_decisions(decisions, now, reason=reason)


def _drop_old_months(in_chunk: Any, lo: int, hi: int, start: int) -> None:
    dropped = MemberTierMonth.month < start
    since = MemberTierMonth.month >= MemberTier.window_month
    mine = MemberTierMonth.member_id == MemberTier.member_id

    def total(column: Any) -> Any:
        return func.coalesce(
            select(func.sum(column)).where(mine, since, dropped).scalar_subquery(), 0
        )

    db.session.execute(
        update(MemberTier)
        .where(in_chunk, MemberTier.window_month < start)
        .values(
            payer_fen_12m=MemberTier.payer_fen_12m - total(MemberTierMonth.payer_fen),
            purchases_12m=MemberTier.purchases_12m - total(MemberTierMonth.purchases),
            window_month=start,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        delete(MemberTierMonth)
        .where(MemberTierMonth.member_id >= lo, MemberTierMonth.member_id <= hi, dropped)
        .execution_options(synchronize_session=False)
    )


def _decide(row: Any, ladder: Ladder, now: datetime) -> _Decision | None:
    """What the review does to one candidate row (None: nothing)."""
    expired = bool(row.override_code) and not override_active(row, now)
    old = row.override_code if expired and ladder.get(row.override_code) else None
    old = old or effective_code(row, ladder, now)
    current = ladder.get(row.tier_code)
    earned = ladder.earned(basis_value(row, ladder.basis))
    if current is None or earned.rank > current.rank:
        decision = _upgrade(row, ladder, earned, now, old)
        decision.clear_override = decision.clear_override or expired
        if expired:
            decision.new_effective = earned.code
            decision.reach_no = row.reach_no + (1 if earned.code != old else 0)
        return decision
    tier_code, reached_at, keep_until = row.tier_code, row.reached_at, row.keep_until
    if (keep_until is None or keep_until <= now) and earned.rank < current.rank:
        index = max(ladder.index(earned.code), ladder.index(current.code) - ladder.review_max_steps)
        lower = ladder.tiers[index]
        tier_code, reached_at = lower.code, now
        keep_until = add_months(now, ladder.keep_months) if index > 0 else None
    elif not expired:
        return None
    active_override = not expired and override_active(row, now)
    new = row.override_code if active_override else tier_code
    return _Decision(
        member_id=row.member_id,
        old_effective=old,
        tier_code=tier_code,
        reached_at=reached_at,
        keep_until=keep_until,
        reach_no=row.reach_no + (1 if new != old else 0),
        clear_override=expired,
        new_effective=new,
    )
