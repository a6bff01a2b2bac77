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


@points_cli.command("audit")
def audit() -> None:
    """Recompute every balance from the ledger; exit 1 if any cached balance differs."""
    from app.points.services import audit_differences

    differences = audit_differences()
    for member_id, cached, ledger in differences:
        click.echo(f"member {member_id}: cached {cached} != ledger {ledger}")
    if differences:
        raise SystemExit(1)
    click.echo("points audit: every cached balance equals its ledger sum")


def register_cli(app: Flask) -> None:
    from app.coupons.cli import coupons_cli

    for group in (admin_cli, demo_cli, points_cli):
        app.cli.add_command(group)
    app.cli.add_command(coupons_cli)
