"""Command-line tools: ``flask --app wsgi admin|demo|points …``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

admin_cli = AppGroup("admin", help="Administration: tokens.")
demo_cli = AppGroup("demo", help="The demo brand, for a first look.")
points_cli = AppGroup("points", help="Points ledger tools.")


@admin_cli.command("create-token")
@click.argument("name")
def create_token(name: str) -> None:
    """Print a new admin bearer token (shown once; only its hash is stored)."""
    from app.admin.auth import create_admin_token

    token = create_admin_token(name)
    click.echo(f"Admin token for {name!r} (store it now; it is not shown again):")
    click.echo(token)


@demo_cli.command("seed")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has stores.")
def seed(if_empty: bool) -> None:
    """Seed the demo brand: stores in two cities, terminals, clerks, tags, coupon templates."""
    from app.demo import seed_demo_brand

    report = seed_demo_brand(if_empty=if_empty)
    for line in report:
        click.echo(line)


@demo_cli.command("pay")
@click.option("--wallet", type=click.Choice(["wechat", "alipay"]), required=True)
@click.option("--amount", required=True, help="yuan, e.g. 35.00")
@click.option("--store", default=None, help="store code carried in attach/passback_params")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--payer", default=None, help="openid / Alipay user id (default: a new payer)")
def demo_pay(wallet: str, amount: str, store: str | None, url: str, payer: str | None) -> None:
    """Send a correctly signed payment notification to a running server (sandbox keys)."""
    from app.payments.demo import DemoError, send_demo_payment

    try:
        sent = send_demo_payment(wallet=wallet, amount=amount, store=store, url=url, payer=payer)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"POST {url.rstrip('/')}{sent.path} -> {sent.status} {sent.reply.strip()[:80]}")
    click.echo(f"payer {sent.identity_kind}={sent.payer}, transaction {sent.transaction_id}")
    click.echo(
        f"see the member: GET {url.rstrip('/')}/admin/v1/members?identity_kind="
        f"{sent.identity_kind}&external_id={sent.payer}"
    )


@points_cli.command("audit")
def audit() -> None:
    """Recompute every balance from the ledger and the lots; exit 1 on any difference."""
    from app.points.lots import lot_differences
    from app.points.services import audit_differences

    differences = audit_differences()
    for member_id, cached, ledger in differences:
        click.echo(f"member {member_id}: cached {cached} != ledger {ledger}")
    lot_gaps = lot_differences()
    for member_id, balance, remaining in lot_gaps:
        click.echo(f"member {member_id}: balance {balance} but lots hold {remaining}")
    if differences or lot_gaps:
        raise SystemExit(1)
    click.echo("points audit: every cached balance equals its ledger sum and its lots")


@points_cli.command("expire")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10000))
def expire(batch_size: int) -> None:
    """Expire every lot past its expiry (safe to run twice or concurrently)."""
    from app.points.jobs import expire_points

    run = expire_points(batch_size=batch_size)
    click.echo(f"expired {run.points} points in {run.lots} lots of {run.members} members")


@points_cli.command("expiring")
@click.option("--within-days", default=30, show_default=True, type=click.IntRange(1, 3660))
def expiring(within_days: int) -> None:
    """List members whose points expire soon: member id, points, soonest expiry (UTC)."""
    from app.points.jobs import members_with_points_expiring

    rows = members_with_points_expiring(within_days)
    for row in rows:
        click.echo(f"{row.member_id}\t{row.points}\t{row.expires_at.isoformat()}")
    click.echo(f"{len(rows)} members with points expiring within {within_days} days")


def register_cli(app: Flask) -> None:
    from app.audit.cli import audit_command
    from app.coupons.cli import coupons_cli
    from app.engine.cli import engine_cli
    from app.jobs.cli import jobs_cli
    from app.tiers.cli import tiers_cli

    for group in (admin_cli, demo_cli, points_cli, jobs_cli, coupons_cli, engine_cli, tiers_cli):
        app.cli.add_command(group)
    app.cli.add_command(audit_command)
