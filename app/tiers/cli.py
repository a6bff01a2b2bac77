"""``flask tiers …``: the review and the re-evaluation by hand, and the basis rebuild."""

from __future__ import annotations

import click
from flask.cli import AppGroup

tiers_cli = AppGroup("tiers", help="Member tiers.")


@tiers_cli.command("rebuild-basis")
def rebuild_basis_command() -> None:
    """Recompute every member's basis from purchases, then re-evaluate tiers against the ladder
    (members are upgraded where they qualify; nobody is demoted within a keep period)."""
    from app.common.clock import utcnow
    from app.tiers.backfill import rebuild_basis
    from app.tiers.review import review_all

    now = utcnow()
    counts = rebuild_basis(now)
    click.echo(f"basis rebuilt: {counts['members']} members, {counts['months']} member-months")
    reviewed = review_all(now, reason="ladder")
    click.echo(f"tiers re-evaluated: {reviewed['members']} members, {reviewed['changed']} changed")
