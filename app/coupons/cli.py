"""``flask coupons expire | return-gifts | reminders``: the coupon jobs, for cron or by hand."""

from __future__ import annotations

import click
from flask.cli import AppGroup

coupons_cli = AppGroup("coupons", help="Coupon jobs: expiry, unclaimed gifts, reminders.")


@coupons_cli.command("expire")
def expire() -> None:
    """Mark available coupons past their validity as expired."""
    from app.coupons.jobs import expire_coupons

    click.echo(f"coupons expired: {expire_coupons()['expired']}")


@coupons_cli.command("return-gifts")
def return_gifts() -> None:
    """Return unclaimed, expired gifts to their givers."""
    from app.coupons.jobs import return_expired_gifts

    click.echo(f"gifts returned: {return_expired_gifts()['returned']}")


@coupons_cli.command("reminders")
@click.option("--days", default=3, show_default=True, help="Expiring within this many days.")
def reminders(days: int) -> None:
    """List coupons expiring soon (member id, code, expiry), one per line."""
    from app.coupons.jobs import expiry_reminders

    rows = expiry_reminders(days)
    for row in rows:
        click.echo(f"{row['member_id']}\t{row['code']}\t{row['expires_at'].isoformat()}")
    click.echo(f"coupons expiring within {days} days: {len(rows)}")
