"""Tiers: every member's tier matches its basis and the ladder, allowing for keep periods and
HQ overrides; the basis totals match the monthly buckets they are kept with."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, select

from app.audit.types import Difference
from app.common.clock import ensure_aware, utcnow
from app.extensions import db
from app.tiers.ladder import basis_value, load_ladder
from app.tiers.models import MemberTier, MemberTierMonth

# the review runs nightly: a keep period or override that ended within this is not yet late
REVIEW_GRACE = timedelta(days=2)


def tier_differences() -> list[Difference]:
    ladder = load_ladder()
    found: list[Difference] = []
    now = utcnow()
    sums = (
        select(
            MemberTierMonth.member_id,
            func.sum(MemberTierMonth.payer_fen).label("fen"),
            func.sum(MemberTierMonth.purchases).label("count"),
        )
        .join(MemberTier, MemberTier.member_id == MemberTierMonth.member_id)
        .where(MemberTierMonth.month >= MemberTier.window_month)
        .group_by(MemberTierMonth.member_id)
        .subquery()
    )
    rows = db.session.execute(
        select(MemberTier, sums.c.fen, sums.c.count)
        .outerjoin(sums, and_(sums.c.member_id == MemberTier.member_id))
        .order_by(MemberTier.member_id)
        .execution_options(yield_per=2000)
    )
    for row, fen, count in rows:
        subject = f"member {row.member_id}"
        if (max(0, int(fen or 0)), max(0, int(count or 0))) != (
            row.payer_fen_12m,
            row.purchases_12m,
        ):
            found.append(
                Difference(
                    "tier_basis_differs_from_months",
                    subject,
                    f"totals {row.payer_fen_12m} fen / {row.purchases_12m} "
                    f"purchases, months {fen or 0} / {count or 0}",
                )
            )
        if ladder is None:
            continue
        tier = ladder.get(row.tier_code)
        if tier is None:
            found.append(Difference("tier_not_in_ladder", subject, f"tier {row.tier_code!r}"))
            continue
        earned = ladder.earned(basis_value(row, ladder.basis))
        if earned.rank > tier.rank:
            found.append(
                Difference(
                    "tier_below_basis",
                    subject,
                    f"on {tier.code}, basis {basis_value(row, ladder.basis)} earns {earned.code}",
                )
            )
        elif earned.rank < tier.rank:
            keep = row.keep_until
            if keep is None or ensure_aware(keep) + REVIEW_GRACE < now:
                found.append(
                    Difference(
                        "tier_above_basis_after_keep",
                        subject,
                        f"on {tier.code} past its keep period ({keep}), basis earns {earned.code}",
                    )
                )
        if row.override_code:
            if ladder.get(row.override_code) is None:
                found.append(
                    Difference(
                        "tier_override_not_in_ladder", subject, f"override {row.override_code!r}"
                    )
                )
            elif (
                row.override_until is None or ensure_aware(row.override_until) + REVIEW_GRACE < now
            ):
                found.append(
                    Difference(
                        "tier_override_expired",
                        subject,
                        f"override {row.override_code} ended {row.override_until}",
                    )
                )
    return found
