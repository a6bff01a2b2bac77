"""A member merge keeps the higher tier and sums the basis (monthly buckets and totals)."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from app.common.clock import ensure_aware, utcnow
from app.common.hooks import TIER_CHANGED, TierChanged
from app.extensions import db
from app.tiers.ladder import load_ladder
from app.tiers.models import MemberTier, MemberTierMonth, TierChange
from app.tiers.services import add_months_basis, effective_code, override_active


def on_member_merge(absorbed_id: int, survivor_id: int) -> None:
    """``MERGE_STEPS`` step (both members locked by the merge, in its transaction)."""
    rows = {
        r.member_id: r
        for r in db.session.execute(
            select(MemberTier)
            .where(MemberTier.member_id.in_(sorted([absorbed_id, survivor_id])))
            .order_by(MemberTier.member_id)
            .with_for_update()
        ).scalars()
    }
    gone = rows.get(absorbed_id)
    if gone is None:
        return
    buckets = db.session.execute(
        select(MemberTierMonth.month, MemberTierMonth.payer_fen, MemberTierMonth.purchases).where(
            MemberTierMonth.member_id == absorbed_id
        )
    ).all()
    if buckets:
        add_months_basis([(survivor_id, b.month, b.payer_fen, b.purchases) for b in buckets])
        db.session.execute(delete(MemberTierMonth).where(MemberTierMonth.member_id == absorbed_id))
    db.session.execute(
        update(TierChange).where(TierChange.member_id == absorbed_id).values(member_id=survivor_id)
    )
    keep = rows.get(survivor_id)
    if keep is None:  # the survivor never bought: it takes the absorbed row as it is
        db.session.execute(
            update(MemberTier)
            .where(MemberTier.member_id == absorbed_id)
            .values(member_id=survivor_id)
        )
        db.session.expire_all()
        return
    ladder = load_ladder()
    now = utcnow()
    old = effective_code(keep, ladder, now) if ladder else None
    keep.payer_fen_12m += gone.payer_fen_12m
    keep.purchases_12m += gone.purchases_12m
    keep.growth += gone.growth
    keep.window_month = min(keep.window_month, gone.window_month)  # the review drops the rest
    if ladder is not None:
        mine, theirs = ladder.get(keep.tier_code), ladder.get(gone.tier_code)
        higher = theirs is not None and (mine is None or theirs.rank > mine.rank)
        same = theirs is not None and mine is not None and theirs.rank == mine.rank
        if higher or (same and _later(gone.keep_until, keep.keep_until)):
            keep.tier_code, keep.reached_at, keep.keep_until = (
                gone.tier_code,
                gone.reached_at,
                gone.keep_until,
            )
        if override_active(gone, now):
            o_mine = ladder.get(keep.override_code) if override_active(keep, now) else None
            o_theirs = ladder.get(gone.override_code)
            if o_theirs is not None and (o_mine is None or o_theirs.rank > o_mine.rank):
                keep.override_code, keep.override_until = gone.override_code, gone.override_until
                keep.override_reason, keep.override_by = gone.override_reason, gone.override_by
    db.session.delete(gone)
    db.session.flush()
    if ladder is None:
        return
    new = effective_code(keep, ladder, now)
    if new != old:
        keep.reach_no += 1
        db.session.add(
            TierChange(
                member_id=survivor_id,
                old_code=old,
                new_code=new,
                reason="merge",
                reach_no=keep.reach_no,
                created_at=now,
                note=f"merged member {absorbed_id}",
            )
        )
        db.session.flush()
        TIER_CHANGED.fire([TierChanged(survivor_id, old, new, "merge", now)])


def _later(a, b) -> bool:
    if a is None:
        return False
    return b is None or ensure_aware(a) > ensure_aware(b)
