"""Run vendor tickets through an adapter and then through the native event batch."""

from __future__ import annotations

from typing import Any

from app.errors import NotFound
from app.pos.context import TillContext
from app.pos.events import ingest_events
from pos_adapter.vendors.base import VendorAdapter, VendorTicketError


def tickets_to_events(
    ctx: TillContext, adapters: dict[str, VendorAdapter], vendor: str, tickets: list[dict]
) -> list[dict[str, Any]]:
    """One result per produced event (``ticket`` names its ticket), in ticket order."""
    adapter = adapters.get(vendor)
    if adapter is None:
        raise NotFound(
            f"no adapter for vendor {vendor!r}",
            code="UNKNOWN_VENDOR",
            details={"vendors": sorted(adapters)},
        )
    plan: list[tuple[str | None, list[dict] | VendorTicketError]] = []
    for ticket in tickets:
        try:
            plan.append((adapter.ticket_id(ticket), adapter.to_events(ticket)))
        except VendorTicketError as exc:
            plan.append((adapter.ticket_id(ticket), exc))
    events = [e for _, produced in plan if isinstance(produced, list) for e in produced]
    outcomes = iter(ingest_events(ctx, events))
    results: list[dict[str, Any]] = []
    for ticket_id, produced in plan:
        if isinstance(produced, VendorTicketError):
            error = {"code": produced.code, "message": str(produced), "details": {}}
            results.append(
                {"id": ticket_id, "ticket": ticket_id, "status": "rejected", "error": error}
            )
        elif not produced:
            results.append({"id": ticket_id, "ticket": ticket_id, "status": "accepted"})
        else:
            results.extend({**next(outcomes), "ticket": ticket_id} for _ in produced)
    return results
