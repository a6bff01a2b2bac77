"""Running jobs: on RQ when Redis is real, in-process otherwise.

``execute`` is what RQ calls. It makes sure an app context exists (so plain ``rq worker`` works
too), records periodic runs, and lets only retryable errors reach RQ's retry: a job that fails
for a reason a retry cannot fix is recorded as failed at once.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, current_app, has_app_context
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.common.clock import utcnow
from app.common.locks import RedisLock
from app.extensions import db, redis_store
from app.jobs.models import JobRun
from app.jobs.registry import get_job

log = logging.getLogger(__name__)
RETRYABLE = (
    OperationalError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)

_worker_app: Flask | None = None


def _app() -> Flask:
    """The app for a job started outside one (plain ``rq worker``): built once per process."""
    global _worker_app
    if _worker_app is None:
        from app import create_app

        _worker_app = create_app()
    return _worker_app


def jobs_inline() -> bool:
    """Without a real Redis (the embedded default) jobs run in the calling process."""
    return not current_app.config.get("REDIS_URL") or bool(current_app.config.get("JOBS_INLINE"))


def enqueue(
    name: str, *, run_id: int | None = None, job_id: str | None = None, **kwargs: Any
) -> Any:
    """Queue job ``name``; in-process mode runs it now and returns its result."""
    spec = get_job(name)
    if jobs_inline():
        return execute(name, run_id=run_id, kwargs=kwargs)
    from rq import Queue, Retry

    queue = Queue(spec.queue, connection=redis_store.client)
    return queue.enqueue_call(
        execute,
        kwargs={"name": name, "run_id": run_id, "kwargs": kwargs},
        timeout=spec.timeout,
        job_id=job_id,
        retry=Retry(max=spec.retries, interval=[5, 30, 120]) if spec.retries else None,
        description=name,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
    )


def execute(name: str, run_id: int | None = None, kwargs: dict | None = None) -> Any:
    if has_app_context():
        return _execute(name, run_id, kwargs or {})
    with _app().app_context():
        try:
            return _execute(name, run_id, kwargs or {})
        finally:
            db.session.remove()


class JobBusy(RuntimeError):
    """Another run of the same job holds its lock; RQ retries this one later."""


RETRYABLE = (*RETRYABLE, JobBusy)


def _execute(name: str, run_id: int | None, kwargs: dict) -> Any:
    spec = get_job(name)
    if not spec.exclusive:
        return _run_locked(spec, name, run_id, kwargs)
    lock = RedisLock(f"job-lock:{name}", ttl=spec.timeout + 30)
    if not lock.acquire():
        _mark(run_id, status="enqueued", error="another run of this job was in progress")
        raise JobBusy(f"job {name} is already running")
    try:
        return _run_locked(spec, name, run_id, kwargs)
    finally:
        try:
            lock.release()
        except (RedisConnectionError, RedisTimeoutError):
            log.warning("job %s: Redis unreachable when releasing its lock", name)


def _run_locked(spec: Any, name: str, run_id: int | None, kwargs: dict) -> Any:
    from app.jobs.chunked import RUN_KEY

    period = _mark(run_id, status="running", started=True)
    # a chunked job resumes (or joins) the run of this period
    token = RUN_KEY.set(f"period:{period}") if period else None
    try:
        result = spec.function()(**kwargs)
    except RETRYABLE as exc:
        db.session.rollback()
        _mark(run_id, status="enqueued", error=f"{type(exc).__name__} (will retry)")
        log.warning("job %s hit a retryable error: %s", name, type(exc).__name__)
        raise
    except Exception as exc:
        db.session.rollback()
        _mark(run_id, status="failed", error="".join(traceback.format_exception_only(exc)))
        log.exception("job %s failed", name)
        return {"failed": type(exc).__name__}
    finally:
        if token is not None:
            RUN_KEY.reset(token)
    _mark(run_id, status="done", result=result if isinstance(result, dict) else None)
    return result


def _mark(
    run_id: int | None,
    *,
    status: str,
    started: bool = False,
    result: dict | None = None,
    error: str | None = None,
) -> str | None:
    """Record a run's status; its period key."""
    if run_id is None:
        return None
    run = db.session.execute(select(JobRun).where(JobRun.id == run_id)).scalar_one_or_none()
    if run is None:
        return None
    run.status = status
    if started:
        run.started_at = utcnow()
        run.attempts += 1
    if status in ("done", "failed"):
        run.finished_at = utcnow()
    if result is not None:
        run.result = result
    if error is not None:
        run.error = error[:2000]
    period = run.period_key
    db.session.commit()
    return period
