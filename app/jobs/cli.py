"""``flask jobs …``: worker, scheduler, and any job run once by hand."""

from __future__ import annotations

import json
import sys

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
@click.option(
    "--fresh", is_flag=True, help="Start a new run instead of resuming an unfinished one."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(name: str, fresh: bool, quiet: bool) -> None:
    """Run one job now, in this process, and print its result.

    A long job (one that walks every member) resumes its newest unfinished run, so a run
    killed half-way carries on where it stopped; it shows a progress bar on stderr."""
    from app.common.clock import utcnow
    from app.jobs.chunked import ON_PROGRESS, RUN_KEY, _job_named, latest_unfinished
    from app.jobs.registry import get_job
    from app.jobs.runner import execute

    try:
        get_job(name)
    except KeyError as exc:
        raise click.UsageError(str(exc)) from exc
    if _job_named(name) is None:
        click.echo(json.dumps(execute(name), default=str, ensure_ascii=False))
        return
    key = None if fresh else latest_unfinished(name)
    if key is not None:
        click.echo(f"resuming run {key}", err=True)
    RUN_KEY.set(key or f"cli:{utcnow().isoformat(timespec='seconds')}")
    with click.progressbar(length=1000, label=name, file=sys.stderr, show_pos=False) as bar:
        shown = [0]

        def report(figures: dict) -> None:
            at = int(figures["percent"] * 10)
            if at > shown[0]:
                bar.update(at - shown[0])
                shown[0] = at
            bar.label = f"{name} [{figures['step']}] {figures['members_done']:,} members"

        if not quiet:
            ON_PROGRESS.set(report)
        result = execute(name)
        bar.update(1000 - shown[0])
    click.echo(json.dumps(result, default=str, ensure_ascii=False))


@jobs_cli.command("progress")
def progress() -> None:
    """Figures of unfinished and recent runs of the long jobs."""
    from app.jobs.chunked import runs_overview

    for figures in runs_overview():
        click.echo(json.dumps(figures, default=str, ensure_ascii=False))


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
