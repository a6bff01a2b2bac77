"""Operational figures: queue depths, job failures, outbox backlog, money journal backlog."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.engine.journal import backlog
from app.extensions import db, redis_store
from app.jobs.chunked import runs_overview
from app.jobs.models import JobRun
from app.jobs.registry import QUEUES
from app.outbox.models import OutboxMessage


def snapshot() -> dict[str, Any]:
    outbox = dict(
        db.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
    )
    job_runs = dict(
        db.session.execute(select(JobRun.status, func.count()).group_by(JobRun.status)).all()
    )
    failed_by_job = dict(
        db.session.execute(
            select(JobRun.name, func.count()).where(JobRun.status == "failed").group_by(JobRun.name)
        ).all()
    )
    return {
        "queues": _queue_depths(),
        "job_runs": {k: int(v) for k, v in job_runs.items()},
        "job_failures": {k: int(v) for k, v in failed_by_job.items()},
        "outbox": {k: int(v) for k, v in outbox.items()},
        "outbox_backlog": int(outbox.get("pending", 0)) + int(outbox.get("sending", 0)),
        "journal": backlog(),
        "long_jobs": runs_overview(),
    }


def _queue_depths() -> dict[str, dict[str, int]]:
    if not current_app.config.get("REDIS_URL"):
        return {name: {"queued": 0, "failed": 0} for name in QUEUES}
    from rq import Queue

    depths = {}
    for name in QUEUES:
        queue = Queue(name, connection=redis_store.client)
        depths[name] = {"queued": queue.count, "failed": queue.failed_job_registry.count}
    return depths
