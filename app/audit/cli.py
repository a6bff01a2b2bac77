"""``flask audit``: every consistency check; exit 1 on any difference."""

from __future__ import annotations

import click

from app.audit.services import CHECKS, run_audit


@click.command("audit")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(list(CHECKS)),
    help="Run only these checks (repeatable).",
)
def audit_command(only: tuple[str, ...]) -> None:
    """Check ledger, coupons, identities and POS records; exit 1 on any difference."""
    results = run_audit(list(only) or None)
    total = 0
    for name, differences in results.items():
        for difference in differences:
            click.echo(str(difference))
        total += len(differences)
        click.echo(f"{name}: {len(differences)} differences")
    click.echo(f"audit: {total} differences")
    if total:
        raise SystemExit(1)
