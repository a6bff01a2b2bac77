"""Partition upkeep on PostgreSQL: next months' partitions made ahead, journal and outbox pruned.

``ops.partitions`` runs daily (``app/jobs/registry.py``). Safe to run twice or on two hosts at
once: creating a partition that exists does nothing, and pruning deletes rows that another run
may have deleted already. On SQLite (unpartitioned) it only prunes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import current_app

from app.common.clock import utcnow
from app.common.partitions import PARTITIONED, detach_before, ensure_partitions, prune
from app.extensions import db


def make_partitions(now: datetime | None = None, months_ahead: int | None = None) -> list[str]:
    """This month's and the next months' partitions (``PARTITION_MONTHS_AHEAD``)."""
    ahead = (
        months_ahead if months_ahead is not None else current_app.config["PARTITION_MONTHS_AHEAD"]
    )
    with db.engine.begin() as conn:
        if conn.dialect.name != "postgresql":
            return []
        return ensure_partitions(conn, now or utcnow(), ahead)


def prune_history(now: datetime | None = None) -> dict[str, int]:
    """Delete journal events and outbox messages in a final state older than their retention
    (``JOURNAL_RETENTION_DAYS``, ``OUTBOX_RETENTION_DAYS``; 0 keeps them)."""
    now = now or utcnow()
    counts = {}
    for table, spec in PARTITIONED.items():
        if spec.retention_setting is None:
            continue
        days = int(current_app.config[spec.retention_setting] or 0)
        counts[table] = prune(db.engine.begin, table, days, now) if days > 0 else 0
    return counts


def upkeep(now: datetime | None = None) -> dict[str, Any]:
    """The daily job: partitions ahead, then retention."""
    now = now or utcnow()
    return {"created": len(make_partitions(now)), "pruned": prune_history(now)}


def archive_before(before: date, tables: list[str], schema: str = "archive") -> list[str]:
    """Detach the monthly partitions of ``tables`` that end by ``before`` into ``schema``."""
    with db.engine.begin() as conn:
        if conn.dialect.name != "postgresql":
            return []
        return [name for t in tables for name in detach_before(conn, t, before, schema)]
