"""Command-line tools: ``flask --app wsgi admin|demo|points …``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

admin_cli = AppGroup("admin", help="Administration: tokens.")
operators_cli = AppGroup("operators", help="HQ console operators.")
demo_cli = AppGroup("demo", help="The demo brand, for a first look.")
points_cli = AppGroup("points", help="Points ledger tools.")


_ROLE_CHOICE = click.Choice(["hq_admin", "hq_analyst", "region_manager", "store_manager"])


@admin_cli.command("create-token")
@click.argument("name")
@click.option("--role", type=_ROLE_CHOICE, default="hq_admin", show_default=True)
@click.option("--store", "stores", multiple=True, help="store code (scoped roles; repeat)")
def create_token(name: str, role: str, stores: tuple[str, ...]) -> None:
    """Print a new admin bearer token (shown once; only its hash is stored)."""
    from app.admin.auth import create_admin_token
    from app.operators.services import scope_store_ids

    try:
        store_ids = scope_store_ids(role, list(stores))
    except Exception as exc:
        raise click.ClickException(str(exc)) from exc
    token = create_admin_token(name, role, store_ids)
    click.echo(f"Admin token for {name!r} (store it now; it is not shown again):")
    click.echo(token)


@admin_cli.command("list-tokens")
def list_tokens() -> None:
    """List admin tokens: id, name, created, revoked (the tokens themselves are never stored)."""
    from app.admin.auth import list_admin_tokens

    tokens = list_admin_tokens()
    for token in tokens:
        revoked = token.revoked_at.isoformat() if token.revoked_at else "active"
        click.echo(f"{token.id}\t{token.name}\t{token.created_at.isoformat()}\t{revoked}")
    click.echo(f"{len(tokens)} admin tokens")


@admin_cli.command("revoke-token")
@click.argument("token_id", type=click.IntRange(1, 2**31 - 1))
def revoke_token(token_id: int) -> None:
    """Revoke an admin token by its id (from list-tokens): it stops working at once."""
    from app.admin.auth import revoke_admin_token
    from app.errors import NotFound

    try:
        token = revoke_admin_token(token_id)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"admin token {token.id} ({token.name}) revoked at {token.revoked_at.isoformat()}")


@operators_cli.command("create")
@click.argument("username")
@click.option("--name", default=None, help="display name (default: the username)")
@click.option("--role", type=_ROLE_CHOICE, required=True)
@click.option("--store", "stores", multiple=True, help="store code (scoped roles; repeat)")
@click.password_option(help="at least 8 characters (prompted when omitted)")
def create_operator_command(
    username: str, name: str | None, role: str, stores: tuple[str, ...], password: str
) -> None:
    """Create a console operator with a role (and stores, for region and store managers)."""
    from app.errors import DomainError
    from app.operators.services import create_operator

    try:
        operator = create_operator(username, password, name or username, role, list(stores))
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    click.echo(f"operator {operator.username!r} ({operator.role}) created")


@operators_cli.command("list")
def list_operators() -> None:
    """Every operator: username, role, status, stores."""
    from sqlalchemy import select

    from app.extensions import db
    from app.operators.models import Operator
    from app.stores.models import Store

    for op in db.session.scalars(select(Operator).order_by(Operator.id)):
        codes = [db.session.get(Store, link.store_id).code for link in op.stores]
        click.echo(f"{op.username}\t{op.role}\t{op.status}\t{','.join(codes) or '*'}")


@operators_cli.command("disable")
@click.argument("username")
def disable_operator(username: str) -> None:
    """Disable an operator; their console sessions end now."""
    from app.operators.services import find_operator, set_status

    operator = find_operator(username)
    if operator is None:
        raise click.ClickException(f"no operator {username!r}")
    set_status(operator.id, "disabled")
    click.echo(f"operator {username!r} disabled")


@operators_cli.command("unlock")
@click.argument("username")
def unlock_operator(username: str) -> None:
    """Lift a lockout after repeated failed logins."""
    from app.operators.services import find_operator, unlock

    operator = find_operator(username)
    if operator is None:
        raise click.ClickException(f"no operator {username!r}")
    unlock(operator.id)
    click.echo(f"operator {username!r} unlocked")


@demo_cli.command("seed")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has stores.")
@click.option(
    "--simulate-days",
    default=0,
    type=click.IntRange(0, 366),
    help="after seeding, simulate this many days of activity (flask demo simulate)",
)
def seed(if_empty: bool, simulate_days: int) -> None:
    """Seed the demo brand: stores, terminals, clerks, console operators, tags, templates."""
    from flask import current_app

    if current_app.config["HUIYUAN_CONFIG"].is_production:  # published demo passwords
        raise click.ClickException("demo seeding is refused in production (HUIYUAN_ENV=production)")
    from app.demo.brand import seed_demo_brand

    report = seed_demo_brand(if_empty=if_empty)
    for line in report:
        click.echo(line)
    if simulate_days and not report[0].startswith("demo: database already"):
        from app.demo.payments import DemoError
        from app.demo.simulate import simulate

        try:
            counts = simulate(days=simulate_days)
        except DemoError as exc:
            click.echo(f"demo: no simulation ({exc})")
        else:
            click.echo(f"demo: {simulate_days} days simulated in {counts['seconds']} s")


@demo_cli.command("console-logins")
def console_logins_command() -> None:
    """Print the demo console operators' logins, one per role."""
    from app.demo.brand import console_logins

    for line in console_logins():
        click.echo(line)


@demo_cli.command("simulate")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 366))
@click.option("--seed", "seed_value", default=1, show_default=True, type=int)
def simulate_command(days: int, seed_value: int) -> None:
    """Simulate DAYS days of the demo brand through the real entrypoints (deterministic)."""
    from app.demo.payments import DemoError
    from app.demo.simulate import simulate

    try:
        counts = simulate(days=days, seed=seed_value)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"simulated {days} days (seed {seed_value}) in {counts.pop('seconds')} s:")
    for kind, n in sorted(counts.items()):
        click.echo(f"  {kind}: {n}")


@demo_cli.command("pay")
@click.option("--wallet", type=click.Choice(["wechat", "alipay"]), required=True)
@click.option("--amount", required=True, help="yuan, e.g. 35.00")
@click.option("--store", default=None, help="store code carried in attach/passback_params")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--payer", default=None, help="openid / Alipay user id (default: a new payer)")
def demo_pay(wallet: str, amount: str, store: str | None, url: str, payer: str | None) -> None:
    """Send a correctly signed payment notification to a running server (sandbox keys)."""
    from app.demo.payments import DemoError, send_demo_payment

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
    from app.ops.cli import partitions_cli
    from app.tiers.cli import tiers_cli

    for group in (
        admin_cli,
        operators_cli,
        demo_cli,
        points_cli,
        jobs_cli,
        coupons_cli,
        engine_cli,
        tiers_cli,
        partitions_cli,
    ):
        app.cli.add_command(group)
    app.cli.add_command(audit_command)
