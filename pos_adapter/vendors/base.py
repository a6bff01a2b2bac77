"""The adapter interface: a vendor ticket → zero or more events of our native format."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol


class VendorTicketError(ValueError):
    """The ticket cannot be converted; ``code`` is answered to the till as a rejection."""

    def __init__(self, message: str, code: str = "VENDOR_TICKET_INVALID"):
        super().__init__(message)
        self.code = code


class VendorAdapter(Protocol):
    name: str

    def ticket_id(self, ticket: dict[str, Any]) -> str | None: ...

    def to_events(self, ticket: dict[str, Any]) -> list[dict[str, Any]]:
        """Our events for one ticket, or ``VendorTicketError``. Must be deterministic."""
        ...


def yuan_to_fen(value: Any, field: str) -> int:
    """Vendor amounts are decimal yuan (``72.5``); fen must come out whole."""
    try:
        amount = Decimal(str(value)) * 100
    except (InvalidOperation, ValueError) as exc:
        raise VendorTicketError(f"{field} is not an amount") from exc
    if amount != amount.to_integral_value(rounding=ROUND_HALF_UP):
        raise VendorTicketError(f"{field} has fractions of a fen")
    return int(amount)
