"""``flask partitions ensure|prune|archive``: the monthly partitions of the history (PostgreSQL)."""

from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup

partitions_cli = AppGroup("partitions", help="Monthly partitions of the history (PostgreSQL).")

# the ledger and sales history: kept, detached month by month for archiving
ARCHIVABLE = ("points_entries", "purchases", "pos_sales", "pos_sale_lines", "clerk_access_log")


@partitions_cli.command("ensure")
@click.option("--months", type=click.IntRange(0, 36), default=None, help="months ahead")
def ensure(months: int | None) -> None:
    """Create this month's and the next months' partitions (idempotent)."""
    from app.ops.jobs import make_partitions

    created = make_partitions(months_ahead=months)
    click.echo(
        f"{len(created)} partition(s) created" + (": " + ", ".join(created) if created else "")
    )


@partitions_cli.command("prune")
def prune_command() -> None:
    """Delete journal events and outbox messages past their retention (final states only)."""
    from app.ops.jobs import prune_history

    for table, n in prune_history().items():
        click.echo(f"{table}: {n} row(s) deleted")


@partitions_cli.command("archive")
@click.option("--before", required=True, help="first month to keep, YYYY-MM")
@click.option("--table", "tables", multiple=True, type=click.Choice(ARCHIVABLE))
@click.option("--schema", default="archive", show_default=True)
def archive(before: str, tables: tuple[str, ...], schema: str) -> None:
    """Detach the monthly partitions that end by --before and move them to --schema, to dump
    (pg_dump -t SCHEMA.NAME) and drop there. Their keys stay: events they hold are still
    refused if delivered again."""
    from app.ops.jobs import archive_before

    try:
        year, month = (int(x) for x in before.split("-"))
        first = date(year, month, 1)
    except ValueError as exc:
        raise click.BadParameter("YYYY-MM", param_hint="--before") from exc
    detached = archive_before(first, list(tables or ARCHIVABLE), schema)
    click.echo(
        f"{len(detached)} partition(s) detached" + (": " + ", ".join(detached) if detached else "")
    )
