"""Every job by name, its queue and limits, and the periodic schedule.

Job functions live in their feature packages (``app/<feature>/jobs.py``) and take keyword
arguments only; periodic ones take ``now`` and return a small dict of counts. Each must be
idempotent and resumable: work in short batches, each its own transaction.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from app.common.clock import SHANGHAI

QUEUES = ("default", "outbox", "maintenance")


@dataclass(frozen=True)
class JobSpec:
    name: str
    target: str  # "module:function"
    queue: str = "default"
    timeout: int = 300  # seconds; the worker kills a job that runs longer
    retries: int = 3  # only for retryable errors (database/network faults)
    exclusive: bool = True  # one run at a time (a Redis lock); False where runs share work

    def function(self) -> Callable[..., Any]:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Schedule:
    """Either every ``every`` or once a day at ``daily_at`` (Asia/Shanghai)."""

    every: timedelta | None = None
    daily_at: time | None = None

    def period_key(self, now: datetime) -> str | None:
        """The period ``now`` falls in, or None when nothing is due yet today."""
        if self.every is not None:
            seconds = int(self.every.total_seconds())
            return f"every{seconds}:{int(now.timestamp()) // seconds}"
        assert self.daily_at is not None
        local = now.astimezone(SHANGHAI)
        if local.time() < self.daily_at:
            return None
        return f"day:{local.date().isoformat()}"


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(
            "outbox.dispatch",
            "app.outbox.dispatcher:dispatch_outbox",
            queue="outbox",
            timeout=120,
            exclusive=False,  # dispatchers claim messages with SKIP LOCKED: they may overlap
        ),
        JobSpec(
            "engine.sweep",
            "app.engine.worker:sweep",
            timeout=120,
            exclusive=False,  # appliers claim journal rows with SKIP LOCKED: they may overlap
        ),
        # chunked jobs (app.jobs.chunked): runners share a run's chunks, so they may overlap
        JobSpec(
            "points.expire", "app.points.jobs:expire_points_job", timeout=1800, exclusive=False
        ),
        JobSpec("points.remind_expiring", "app.outbox.reminders:remind_points_expiring"),
        JobSpec("coupons.expire", "app.coupons.jobs:expire_coupons"),
        JobSpec("coupons.return_gifts", "app.coupons.jobs:return_expired_gifts"),
        JobSpec("coupons.remind_expiring", "app.outbox.reminders:remind_coupons_expiring"),
        JobSpec("pos.expire_redemptions", "app.pos.jobs:expire_redemptions", timeout=60),
        JobSpec(
            "members.birthdays",
            "app.members.birthday:send_birthday_coupons",
            timeout=1800,
            exclusive=False,
        ),
        JobSpec("intel.nightly", "app.intel.nightly:nightly", timeout=3600, exclusive=False),
        JobSpec("intel.campaigns", "app.intel.jobs:run_campaigns", timeout=1800),
        JobSpec("intel.journeys", "app.intel.jobs:run_journeys", timeout=1800),
        JobSpec(
            "intel.segment_export", "app.intel.jobs:segment_export", timeout=1800, exclusive=False
        ),
        JobSpec(  # a chunked run: several workers share it (app.jobs.chunked)
            "intel.rebuild_stats", "app.intel.jobs:rebuild_stats", timeout=7200, exclusive=False
        ),
        JobSpec("reports.rollup", "app.reports.jobs:rollup", timeout=600),
        JobSpec("tiers.review", "app.tiers.jobs:review_tiers", timeout=3600, exclusive=False),
        JobSpec(
            "tiers.reevaluate", "app.tiers.jobs:reevaluate_tiers", timeout=3600, exclusive=False
        ),
        JobSpec("jobs.prune_runs", "app.jobs.scheduler:prune_job_runs", queue="maintenance"),
        JobSpec("ops.partitions", "app.ops.jobs:upkeep", queue="maintenance", timeout=1800),
        JobSpec(
            "members.purge_token_revocations",
            "app.members.jobs:purge_token_revocations",
            queue="maintenance",
        ),
        JobSpec(
            "platforms.wechatpay_certificates",
            "app.platforms.wechatpay_certs:refresh_certificates_job",
            timeout=60,
        ),
    )
}

PERIODIC: dict[str, Schedule] = {
    "outbox.dispatch": Schedule(every=timedelta(seconds=15)),
    "engine.sweep": Schedule(every=timedelta(minutes=1)),
    "pos.expire_redemptions": Schedule(every=timedelta(minutes=1)),
    "coupons.return_gifts": Schedule(every=timedelta(minutes=5)),
    "coupons.expire": Schedule(every=timedelta(minutes=15)),
    "points.expire": Schedule(daily_at=time(0, 30)),  # Shanghai: just after midnight
    "members.birthdays": Schedule(daily_at=time(9, 0)),
    "points.remind_expiring": Schedule(daily_at=time(10, 0)),
    "coupons.remind_expiring": Schedule(daily_at=time(10, 0)),
    "jobs.prune_runs": Schedule(daily_at=time(3, 30)),
    "ops.partitions": Schedule(daily_at=time(3, 45)),  # months ahead, journal/outbox retention
    "members.purge_token_revocations": Schedule(daily_at=time(3, 50)),
    # downloads only when due: every 12 h, or when the newest certificate nears expiry
    "platforms.wechatpay_certificates": Schedule(every=timedelta(hours=1)),
    "intel.nightly": Schedule(daily_at=time(2, 0)),  # stages, 12-month windows, RFM
    "intel.campaigns": Schedule(every=timedelta(minutes=1)),
    "intel.journeys": Schedule(every=timedelta(minutes=5)),
    "reports.rollup": Schedule(every=timedelta(minutes=1)),  # today's KPIs within a minute
    "tiers.review": Schedule(daily_at=time(1, 30)),  # before intel.nightly, not beside it
}


def get_job(name: str) -> JobSpec:
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known: {', '.join(sorted(JOBS))}") from None
