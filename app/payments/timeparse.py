"""Platform time formats → aware UTC datetimes (both platforms send Beijing time)."""

from __future__ import annotations

from datetime import datetime

from app.common.clock import SHANGHAI, ensure_aware, utcnow


def beijing(value: str | None, fmt: str, *, fractional: bool = False) -> datetime:
    """``20261123190102`` / ``2026-11-23 19:01:02`` in Beijing time; now when absent or odd.

    ``fractional``: the value may also carry fractions of a second (Alipay's ``gmt_refund``,
    ``2026-11-23 19:01:02.345``), which are kept.
    """
    if not value:
        return utcnow()
    formats = [fmt, f"{fmt}.%f"] if fractional else [fmt]
    for candidate in formats:
        try:
            return ensure_aware(datetime.strptime(value, candidate).replace(tzinfo=SHANGHAI))
        except ValueError:
            continue
    return utcnow()


def iso(value: str | None) -> datetime:
    """RFC 3339 with offset (WeChat Pay v3 ``success_time``); now when absent or odd."""
    if not value:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return utcnow()
    return ensure_aware(parsed) if parsed.tzinfo else utcnow()
