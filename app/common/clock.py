"""The one source of "now", so expiry and windows can be tested with a controlled clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

_state = threading.local()
_frozen: list[datetime] = []  # process-wide override, for tests that span threads


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    if _frozen:
        return _frozen[-1]
    return datetime.now(UTC)


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Fix "now" at ``at`` (aware) for the duration of the block, in every thread."""
    if at.tzinfo is None:
        raise ValueError("frozen() needs an aware datetime")
    _frozen.append(at.astimezone(UTC))
    try:
        yield
    finally:
        _frozen.pop()


def advance(delta: timedelta) -> None:
    """Move a frozen clock forward."""
    if not _frozen:
        raise RuntimeError("advance() works on a frozen clock only")
    _frozen[-1] = _frozen[-1] + delta


def ensure_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime without a UTC offset")
    return value.astimezone(UTC)
