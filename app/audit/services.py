"""Run every audit check and collect the differences it finds.

Each check is read-only and returns :class:`Difference` rows; an empty result means the data
is consistent. ``flask audit`` exits 1 when any check finds anything.
"""

from __future__ import annotations

from collections.abc import Callable

from app.audit.coupons import coupon_differences
from app.audit.identity import identity_differences
from app.audit.ledger import ledger_differences
from app.audit.pos import pos_differences
from app.audit.tiers import tier_differences
from app.audit.types import Difference

CHECKS: dict[str, Callable[[], list[Difference]]] = {
    "ledger": ledger_differences,
    "coupons": coupon_differences,
    "identity": identity_differences,
    "pos": pos_differences,
    "tiers": tier_differences,
}


def run_audit(only: list[str] | None = None) -> dict[str, list[Difference]]:
    """``{check name: differences}`` for every check (or those named in ``only``)."""
    names = only or list(CHECKS)
    return {name: CHECKS[name]() for name in names}
