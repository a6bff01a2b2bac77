"""Report jobs: the KPI rollup (every minute)."""

from __future__ import annotations

from datetime import datetime

from app.reports.rollup import rollup as _rollup


def rollup(now: datetime | None = None) -> dict[str, int]:
    return _rollup(now)
