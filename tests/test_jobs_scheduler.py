"""Periodic jobs run once per period, however many schedulers tick at once."""

import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from app.db import unit_of_work
from app.extensions import db
from app.jobs import registry
from app.jobs.models import JobRun
from app.jobs.registry import JobSpec, Schedule
from app.jobs.runner import execute, jobs_inline
from app.jobs.scheduler import tick
from app.jobs.worker import run_worker
from app.members.services import create_member
from app.outbox.services import enqueue_message

NOW = datetime(2026, 3, 8, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def drain_queues() -> None:
    """With a real Redis jobs go to RQ: work them off here, as `flask jobs worker` would."""
    if not jobs_inline():
        run_worker(burst=True)


CALLS: list[str] = []


def record_call() -> dict:
    CALLS.append("x")
    return {"calls": len(CALLS)}


def explode() -> dict:
    raise ValueError("a bug, not a fault: retrying cannot help")


@pytest.fixture
def test_jobs(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(
        registry.JOBS, "test.record", JobSpec("test.record", f"{__name__}:record_call")
    )
    monkeypatch.setitem(
        registry.JOBS, "test.explode", JobSpec("test.explode", f"{__name__}:explode")
    )
    monkeypatch.setattr(
        registry,
        "PERIODIC",
        {
            "test.record": Schedule(daily_at=time(8, 0)),
        },
    )
    import app.jobs.scheduler as scheduler

    monkeypatch.setattr(scheduler, "PERIODIC", registry.PERIODIC)


def test_a_daily_job_is_not_due_before_its_local_time():
    schedule = Schedule(daily_at=time(8, 0))
    assert schedule.period_key(datetime(2026, 3, 7, 23, 59, tzinfo=UTC)) is None  # 07:59 CST
    assert schedule.period_key(datetime(2026, 3, 8, 0, 0, tzinfo=UTC)) == "day:2026-03-08"


def test_an_interval_job_has_one_period_per_interval():
    schedule = Schedule(every=timedelta(seconds=15))
    a = schedule.period_key(NOW)
    assert schedule.period_key(NOW + timedelta(seconds=14)) == a
    assert schedule.period_key(NOW + timedelta(seconds=15)) != a


def test_ticking_twice_in_one_period_runs_the_job_once(test_jobs):
    assert tick(NOW) == ["test.record"]
    assert tick(NOW + timedelta(hours=1)) == []
    drain_queues()
    assert len(CALLS) == 1
    run = db.session.execute(select(JobRun)).scalar_one()
    assert run.status == "done" and run.result == {"calls": 1}
    assert tick(NOW + timedelta(days=1)) == ["test.record"]
    drain_queues()
    assert len(CALLS) == 2


def test_schedulers_started_together_run_each_job_once_per_period(app, test_jobs):
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def scheduler() -> None:
        with app.app_context():
            try:
                barrier.wait()
                tick(NOW)
            except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    drain_queues()
    assert len(CALLS) == 1
    assert db.session.query(JobRun).count() == 1


def test_a_job_that_fails_for_good_is_recorded_failed_not_retried(test_jobs):
    run = JobRun(name="test.explode", period_key="manual", status="claimed", claimed_at=NOW)
    db.session.add(run)
    db.session.commit()
    assert execute("test.explode", run_id=run.id) == {"failed": "ValueError"}
    db.session.refresh(run)
    assert run.status == "failed" and "retrying cannot help" in run.error


def test_jobs_cli_runs_a_job_by_name(app):
    with unit_of_work():
        member = create_member(source="test", welcome=False)
        enqueue_message(member.id, "welcome", {}, dedupe_key="w1", channel="nowhere")
    result = app.test_cli_runner().invoke(args=["jobs", "run", "outbox.dispatch"])
    assert result.exit_code == 0, result.output
    assert '"failed": 1' in result.output
    unknown = app.test_cli_runner().invoke(args=["jobs", "run", "no.such.job"])
    assert unknown.exit_code != 0 and "unknown job" in unknown.output
