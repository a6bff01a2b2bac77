"""Points: every cached balance equals its ledger sum, and the lots make up the balance."""

from __future__ import annotations

from app.audit.types import Difference
from app.points.lots import lot_differences
from app.points.services import audit_differences


def ledger_differences() -> list[Difference]:
    found = [
        Difference("balance_not_ledger_sum", f"member {m}", f"cached {c} != ledger {s}")
        for m, c, s in audit_differences()
    ]
    found += [
        Difference("lots_not_balance", f"member {m}", f"balance {b} but lots hold {r}")
        for m, b, r in lot_differences()
    ]
    return found
