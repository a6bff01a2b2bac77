"""``flask jobs …``: worker, scheduler, and any job run once by hand."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
from flask.cli import AppGroup

jobs_cli = AppGroup("jobs", help="Background jobs: worker, scheduler, run one by hand.")


@jobs_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.argument("queues", nargs=-1)
def worker(burst: bool, queues: tuple[str, ...]) -> None:
    """Run an RQ worker on the named queues (default: all)."""
    from app.common import heap
    from app.jobs.registry import QUEUES
    from app.jobs.worker import run_worker

    heap.settle()  # a long-running process: start-up objects out of the collector's way
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
@click.option(
    "--run-key",
    help="Name the run: runners given the same key (on any machine) share it, and a run "
    "killed half-way carries on when started again with its key.",
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    help="Compute as of this instant (a long job's 'now'; e.g. a year-end expiry rehearsal).",
)
@click.option("--chunk-size", type=click.IntRange(1, 100_000), help="Members per chunk.")
def run(
    name: str,
    fresh: bool,
    quiet: bool,
    run_key: str | None,
    as_of: datetime | None,
    chunk_size: int | None,
) -> None:
    """Run one job now, in this process, and print its result.

    A long job (one that walks every member) resumes its newest unfinished run, so a run
    killed half-way carries on where it stopped; it shows a progress bar on stderr."""
    from app.common.clock import utcnow
    from app.jobs.chunked import CHUNK_SIZE, ON_PROGRESS, RUN_KEY, _job_named, latest_unfinished
    from app.jobs.registry import get_job
    from app.jobs.runner import execute

    try:
        get_job(name)
    except KeyError as exc:
        raise click.UsageError(str(exc)) from exc
    if _job_named(name) is None:
        click.echo(json.dumps(execute(name), default=str, ensure_ascii=False))
        return
    key = run_key or (None if fresh else latest_unfinished(name))
    if key is not None:
        click.echo(f"run {key}", err=True)
    tokens = [
        (RUN_KEY, RUN_KEY.set(key or f"cli:{utcnow().isoformat(timespec='seconds')}")),
        (CHUNK_SIZE, CHUNK_SIZE.set(chunk_size)),
    ]
    kwargs = {}
    if as_of is not None:
        kwargs["now"] = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    with click.progressbar(length=1000, label=name, file=sys.stderr, show_pos=False) as bar:
        shown = [0]

        def report(figures: dict) -> None:
            at = int(figures["percent"] * 10)
            if at > shown[0]:
                bar.update(at - shown[0])
                shown[0] = at
            bar.label = f"{name} [{figures['step']}] {figures['members_done']:,} members"

        if not quiet:
            tokens.append((ON_PROGRESS, ON_PROGRESS.set(report)))
        try:
            result = execute(name, kwargs=kwargs)
        finally:
            for var, token in reversed(tokens):
                var.reset(token)
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
