"""The RQ worker, built from the same app factory as the web app."""

from __future__ import annotations

from flask import current_app

from app.extensions import redis_store
from app.jobs.registry import QUEUES


def run_worker(queues: tuple[str, ...] = QUEUES, *, burst: bool = False) -> bool:
    """Work the named queues (in the order given). Jobs run in this process (``SimpleWorker``)
    so they share the app's connection pools; RQ still enforces each job's time limit."""
    if not current_app.config.get("REDIS_URL"):
        raise RuntimeError("the worker needs REDIS_URL; without it jobs already run in-process")
    from rq import Queue, SimpleWorker

    connection = redis_store.client
    worker = SimpleWorker([Queue(q, connection=connection) for q in queues], connection=connection)
    return worker.work(burst=burst, logging_level="INFO")
