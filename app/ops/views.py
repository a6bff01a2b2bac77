"""Admin operations view and Prometheus metrics."""

from __future__ import annotations

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.ops.services import snapshot

blp = Blueprint("ops", __name__, description="Operations: jobs, queues, outbox, metrics")


class OpsSchema(ma.Schema):
    queues = ma.fields.Dict(metadata={"description": "queue → {queued, failed}"})
    job_runs = ma.fields.Dict(metadata={"description": "periodic runs by status"})
    job_failures = ma.fields.Dict(metadata={"description": "failed runs by job"})
    outbox = ma.fields.Dict(metadata={"description": "outbox messages by status"})
    outbox_backlog = ma.fields.Integer()
    long_jobs = ma.fields.List(
        ma.fields.Dict(),
        metadata={
            "description": "long jobs (expiry, tier review, nightly intelligence, birthdays): "
            "every unfinished run and the latest finished ones, each with job, run, state, "
            "step, percent, members_done, chunks_done, chunks_open, members_per_second, "
            "eta_seconds, started_at, finished_at, result"
        },
    )
    journal = ma.fields.Dict(
        metadata={
            "description": "money journal: pending, held (refunds waiting for their payment), "
            "oldest_pending_seconds, apply_lag_p50_seconds, apply_lag_p99_seconds (last 1,000 "
            "events applied in the last 5 minutes)"
        }
    )


@blp.route("/admin/v1/ops")
class Ops(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, OpsSchema)
    def get(self):
        """Queue depths, job failures, outbox backlog, money journal backlog and apply lag, and
        the progress of long jobs"""
        return snapshot()


class _SnapshotCollector:
    def __init__(self, data: dict) -> None:
        self.data = data

    def collect(self):
        queued = GaugeMetricFamily("huiyuan_queue_depth", "Jobs waiting", labels=["queue"])
        failed = GaugeMetricFamily(
            "huiyuan_queue_failed", "Failed jobs kept by RQ", labels=["queue"]
        )
        for name, depth in self.data["queues"].items():
            queued.add_metric([name], depth["queued"])
            failed.add_metric([name], depth["failed"])
        job_failures = GaugeMetricFamily(
            "huiyuan_job_failures", "Failed periodic runs", labels=["job"]
        )
        for name, count in self.data["job_failures"].items():
            job_failures.add_metric([name], count)
        outbox = GaugeMetricFamily(
            "huiyuan_outbox_messages", "Outbox messages by status", labels=["status"]
        )
        for status, count in self.data["outbox"].items():
            outbox.add_metric([status], count)
        backlog = GaugeMetricFamily("huiyuan_outbox_backlog", "Messages not yet delivered")
        backlog.add_metric([], self.data["outbox_backlog"])
        journal = self.data["journal"]
        events = GaugeMetricFamily(
            "huiyuan_journal_events", "Money journal events not applied", labels=["state"]
        )
        events.add_metric(["pending"], journal["pending"])
        events.add_metric(["held"], journal["held"])
        oldest = GaugeMetricFamily(
            "huiyuan_journal_oldest_pending_seconds", "Age of the oldest pending money event"
        )
        oldest.add_metric([], journal["oldest_pending_seconds"])
        lag = GaugeMetricFamily(
            "huiyuan_journal_apply_lag_seconds",
            "Apply lag of recent money events (received → applied)",
            labels=["quantile"],
        )
        lag.add_metric(["0.5"], journal["apply_lag_p50_seconds"])
        lag.add_metric(["0.99"], journal["apply_lag_p99_seconds"])
        percent = GaugeMetricFamily(
            "huiyuan_long_job_percent", "Progress of unfinished long-job runs", labels=["job"]
        )
        members = GaugeMetricFamily(
            "huiyuan_long_job_members_done", "Members done by unfinished runs", labels=["job"]
        )
        for run in self.data["long_jobs"]:
            if run["state"] != "done":
                percent.add_metric([run["job"]], run["percent"])
                members.add_metric([run["job"]], run["members_done"])
        yield from (queued, failed, job_failures, outbox, backlog, events, oldest, lag)
        yield from (percent, members)


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(
        responses={"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}}
    )
    def get(self):
        """Prometheus metrics (queue depths, job failures, outbox backlog)"""
        registry = CollectorRegistry()
        registry.register(_SnapshotCollector(snapshot()))
        return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
