"""``flask jobs …``: worker, scheduler, and any job run once by hand."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

jobs_cli = AppGroup("jobs", help="Background jobs: worker, scheduler, run one by hand.")


@jobs_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.argument("queues", nargs=-1)
def worker(burst: bool, queues: tuple[str, ...]) -> None:
    """Run an RQ worker on the named queues (default: all)."""
    from app.jobs.registry import QUEUES
    from app.jobs.worker import run_worker

    run_worker(queues or QUEUES, burst=burst)


@jobs_cli.command("scheduler")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between ticks.")
@click.option("--max-ticks", type=int, default=None, help="Stop after this many ticks.")
def scheduler(interval: float, max_ticks: int | None) -> None:
    """Enqueue periodic jobs, each once per period however many schedulers run."""
    from app.jobs.scheduler import run_scheduler

    run_scheduler(interval=interval, max_ticks=max_ticks)


@jobs_cli.command("run")
@click.argument("name")
def run(name: str) -> None:
    """Run one job now, in this process, and print its result."""
    from app.jobs.registry import get_job
    from app.jobs.runner import execute

    try:
        get_job(name)
    except KeyError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(json.dumps(execute(name), default=str, ensure_ascii=False))


@jobs_cli.command("list")
def list_jobs() -> None:
    """List jobs and their schedules."""
    from app.jobs.registry import JOBS, PERIODIC

    for name, spec in sorted(JOBS.items()):
        schedule = PERIODIC.get(name)
        when = ""
        if schedule is not None:
            when = f"every {schedule.every}" if schedule.every else f"daily at {schedule.daily_at}"
        click.echo(f"{name:28} queue={spec.queue:12} timeout={spec.timeout}s {when}")
