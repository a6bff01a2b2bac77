"""The ladder as plain values, and the pure rules on it: which tier a basis earns, the next tier
up, how far a review may step down, months and keep periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.common.clock import SHANGHAI
from app.db import forget, per_transaction
from app.extensions import db
from app.tiers.models import MemberTier, Tier, TierSettings


@dataclass(frozen=True)
class TierRow:
    code: str
    name: str
    rank: int
    threshold: int
    earn_multiplier_pct: int
    upgrade_coupon_template_id: int | None
    birthday_coupon_template_id: int | None


@dataclass(frozen=True)
class Ladder:
    basis: str
    keep_months: int
    review_max_steps: int
    version: int
    tiers: tuple[TierRow, ...]  # by rank, lowest first (threshold 0)
    updated_at: datetime | None = None  # with version: which ladder this is (see views_ladder)

    @property
    def lowest(self) -> TierRow:
        return self.tiers[0]

    def get(self, code: str | None) -> TierRow | None:
        for tier in self.tiers:
            if tier.code == code:
                return tier
        return None

    def index(self, code: str | None) -> int:
        """The position of ``code`` (0 = lowest); unknown codes count as the lowest."""
        for i, tier in enumerate(self.tiers):
            if tier.code == code:
                return i
        return 0

    def earned(self, value: int) -> TierRow:
        """The highest tier whose threshold ``value`` reaches."""
        best = self.tiers[0]
        for tier in self.tiers:
            if tier.threshold <= value:
                best = tier
        return best

    def next_above(self, code: str | None) -> TierRow | None:
        i = self.index(code)
        return self.tiers[i + 1] if i + 1 < len(self.tiers) else None


def basis_value(row: MemberTier | object, basis: str) -> int:
    return int(getattr(row, basis) or 0)


def load_ladder() -> Ladder | None:
    """The ladder in force, or None when HQ has not set one: one query, then kept for the rest
    of the transaction (the multiplier provider and the purchases listener share it)."""
    return per_transaction(_CACHE, _read_ladder)


def _read_ladder() -> Ladder | None:
    rows = db.session.execute(
        select(
            TierSettings.basis,
            TierSettings.keep_months,
            TierSettings.review_max_steps,
            TierSettings.version,
            TierSettings.updated_at,
            Tier.code,
            Tier.name,
            Tier.rank,
            Tier.threshold,
            Tier.earn_multiplier_pct,
            Tier.upgrade_coupon_template_id,
            Tier.birthday_coupon_template_id,
        )
        .join(TierSettings, TierSettings.id == 1)
        .order_by(Tier.rank)
    ).all()
    ladder = None
    if rows:
        first = rows[0]
        ladder = Ladder(
            basis=first.basis,
            keep_months=first.keep_months,
            review_max_steps=first.review_max_steps,
            version=first.version,
            updated_at=first.updated_at,
            tiers=tuple(TierRow(*r[5:]) for r in rows),
        )
    return ladder


# Ladders by (version, updated_at), for member views: a view reads that key in the same
# statement as the member's tier row and loads the ladder only when HQ has replaced it. The
# money path keeps reading the ladder in its own transaction (load_ladder).
_VIEW_LADDERS: dict[tuple[int, datetime | None], Ladder] = {}


def views_ladder(key: tuple[int, datetime | None]) -> Ladder | None:
    """The ladder whose ``(version, updated_at)`` is ``key``: this process's copy, or read once."""
    cached = _VIEW_LADDERS.get(key)
    if cached is not None:
        return cached
    ladder = load_ladder()
    if ladder is not None and (ladder.version, ladder.updated_at) == key:
        _VIEW_LADDERS.clear()  # only the ladder in force is worth keeping
        _VIEW_LADDERS[key] = ladder
    return ladder


def forget_ladder() -> None:
    """After changing the ladder in this transaction."""
    forget(_CACHE)


_CACHE = "huiyuan.tiers.ladder"


def month_of(moment: datetime) -> int:
    """``YYYYMM`` of ``moment`` in Asia/Shanghai."""
    local = moment.astimezone(SHANGHAI)
    return local.year * 100 + local.month


def window_start(now: datetime) -> int:
    """The first month of the rolling 12 months ending with ``now``'s month (``YYYYMM``)."""
    local = now.astimezone(SHANGHAI)
    index = local.year * 12 + local.month - 1 - 11
    return (index // 12) * 100 + index % 12 + 1


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months (the day clamped to the target month's length)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")
