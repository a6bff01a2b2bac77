"""Platform time formats → aware UTC datetimes (both platforms send Beijing time)."""

from __future__ import annotations

from datetime import datetime

from app.common.clock import SHANGHAI, ensure_aware, utcnow


def beijing(value: str | None, fmt: str) -> datetime:
    """``20261123190102`` / ``2026-11-23 19:01:02`` in Beijing time; now when absent or odd."""
    if not value:
        return utcnow()
    try:
        return ensure_aware(datetime.strptime(value, fmt).replace(tzinfo=SHANGHAI))
    except ValueError:
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
