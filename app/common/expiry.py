"""When earned points expire: the ``POINTS_EXPIRY`` policy.

- ``year_end_next`` (default): points earned in local year Y expire at the end of Y+1
  (midnight starting 1 January Y+2, in the configured ``TIMEZONE``, Asia/Shanghai by default).
- ``months:N``: N calendar months after they were earned (day clamped to the month's end).
- ``never``.

Kept free of Flask and the database so the configuration can validate the value at start-up.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class ExpiryPolicy:
    kind: str  # year_end_next | months | never
    months: int = 0

    def expires_at(self, earned_at: datetime, tz: str = DEFAULT_TIMEZONE) -> datetime | None:
        """The UTC instant points earned at ``earned_at`` (aware) expire, or None for never."""
        if earned_at.tzinfo is None:
            raise ValueError("earned_at must be timezone-aware")
        local = earned_at.astimezone(ZoneInfo(tz))
        if self.kind == "never":
            return None
        if self.kind == "year_end_next":
            end = datetime(local.year + 2, 1, 1, tzinfo=ZoneInfo(tz))
            return end.astimezone(UTC)
        total = local.month - 1 + self.months
        year, month = local.year + total // 12, total % 12 + 1
        day = min(local.day, calendar.monthrange(year, month)[1])
        return local.replace(year=year, month=month, day=day).astimezone(UTC)


def parse_policy(value: str) -> ExpiryPolicy:
    """``year_end_next`` | ``months:N`` (N ≥ 1) | ``never``; ValueError otherwise."""
    text = (value or "").strip().lower()
    if text in ("year_end_next", "never"):
        return ExpiryPolicy(text)
    if text.startswith("months:"):
        count = text.partition(":")[2]
        if count.isdigit() and 1 <= int(count) <= 1200:
            return ExpiryPolicy("months", int(count))
    raise ValueError(
        f"POINTS_EXPIRY must be year_end_next, months:N (N ≥ 1) or never, not {value!r}"
    )
