"""``flask engine apply`` (the applier process) and ``flask engine status``."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

engine_cli = AppGroup("engine", help="The money engine: journal of payments, applier.")


@engine_cli.command("apply")
@click.option("--once", is_flag=True, help="Apply what is pending, then exit.")
@click.option("--batch", default=500, show_default=True, help="Events per transaction.")
def apply(once: bool, batch: int) -> None:
    """Apply journalled payment notifications as they arrive (run beside the web workers)."""
    from app.common import heap
    from app.engine.worker import run

    if not once:
        heap.settle()  # a long-running process: start-up objects out of the collector's way
    applied = run(once=once, batch=batch)
    click.echo(f"applied {applied} event(s)")


@engine_cli.command("status")
def status() -> None:
    """Print the journal backlog and the apply lag as JSON."""
    from app.engine.journal import backlog

    click.echo(json.dumps(backlog()))
