"""The scheduler: claims each periodic job's period in the database, then enqueues it.

The claim is an insert into ``job_runs`` with a unique (name, period) key, so any number of
schedulers started together run each periodic job once per period. A claimed run whose job was
lost (Redis flushed, scheduler killed between claim and enqueue) is enqueued again later.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
from app.extensions import db, redis_store
from app.jobs.models import JobRun
from app.jobs.registry import PERIODIC, get_job
from app.jobs.runner import enqueue, jobs_inline

log = logging.getLogger(__name__)


def claim(name: str, period_key: str) -> JobRun | None:
    run = JobRun(name=name, period_key=period_key, status="claimed", claimed_at=utcnow())
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return run


def _enqueue_run(run: JobRun) -> None:
    run_id, name, key = run.id, run.name, run.period_key
    if not jobs_inline():
        run.status = "enqueued"
        db.session.commit()
    enqueue(name, run_id=run_id, job_id=rq_job_id(name, key))


def rq_job_id(name: str, period_key: str) -> str:
    """RQ ids allow letters, digits, ``_`` and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{name}-{period_key}")


def tick(now: datetime | None = None) -> list[str]:
    """One pass: claim and enqueue every due period; returns the names this pass enqueued."""
    now = now or utcnow()
    started: list[str] = []
    for name, schedule in PERIODIC.items():
        key = schedule.period_key(now)
        if key is None:
            continue
        run = claim(name, key)
        if run is not None:
            _enqueue_run(run)
            started.append(name)
    requeue_lost_runs(now)
    return started


def requeue_lost_runs(now: datetime) -> int:
    """Enqueue again the runs whose job vanished before it finished (e.g. Redis was flushed)."""
    if jobs_inline():
        return 0
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    count = 0
    stale = db.session.scalars(
        select(JobRun).where(JobRun.status.in_(("claimed", "enqueued", "running")))
    ).all()
    for run in stale:
        limit = timedelta(seconds=get_job(run.name).timeout * 2 + 60)
        if run.claimed_at > now - limit:
            continue
        try:
            job = Job.fetch(rq_job_id(run.name, run.period_key), connection=redis_store.client)
            if job.get_status(refresh=True) in ("queued", "started", "scheduled", "deferred"):
                continue
        except NoSuchJobError:
            pass
        log.warning("re-enqueueing lost run %s %s", run.name, run.period_key)
        run.claimed_at = now
        _enqueue_run(run)
        count += 1
    return count


def prune_job_runs(keep_days: int = 14) -> dict[str, Any]:
    cutoff = utcnow() - timedelta(days=keep_days)
    result = db.session.execute(
        delete(JobRun).where(JobRun.status == "done", JobRun.claimed_at < cutoff)
    )
    db.session.commit()
    from app.jobs.chunked import prune_progress

    return {"deleted": result.rowcount or 0, "long_runs_deleted": prune_progress(keep_days)}


def run_scheduler(
    *, interval: float = 5.0, max_ticks: int | None = None, stop: threading.Event | None = None
) -> None:
    """Tick every ``interval`` seconds until stopped (SIGTERM/SIGINT) or ``max_ticks``."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    ticks = 0
    while not stop.is_set():
        try:
            started = tick()
            if started:
                log.info("scheduler enqueued %s", ", ".join(started))
        except Exception:
            db.session.rollback()
            log.exception("scheduler tick failed")
        ticks += 1
        if max_ticks is not None and ticks >= max_ticks:
            break
        stop.wait(interval)
    db.session.remove()
