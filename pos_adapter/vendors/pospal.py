"""Pospal (银豹) sales tickets, as its open API returns them (``queryTicketBySn`` and pages).

Fields used: ``sn`` (ticket serial), ``datetime`` (``yyyy-MM-dd HH:mm:ss``, store local time,
Asia/Shanghai), ``ticketType`` (``SELL`` or ``SELL_RETURN``, any case), ``invalid`` (1: voided,
反结账), ``totalAmount`` (yuan actually received), ``items`` (``productBarcode`` or
``productUid``, ``quantity``, ``totalAmount``) and ``payments`` (``code``, ``amount``).

- A ``SELL`` ticket → a ``sale`` with ``sale_id`` = ``sn``. Paid money is the sum of payments
  whose code is not a non-money tender (pay codes are per Pospal account, listed by
  ``queryAllPayMethod``: give the codes of points or coupon tenders to ``PospalAdapter``, they
  earn nothing); without payments, ``totalAmount``.
- A voided ``SELL`` ticket → the same sale plus a full ``return`` ``void:<sn>``: whichever
  arrives first, the points net to zero, and replays change nothing.
- A ``SELL_RETURN`` ticket → a ``return`` ``<sn>`` of the sale named by ``sellTicketSn`` (the
  bridge fills it from Pospal's ``querySellTicketByRefunTicketSn``); amounts are refunded as
  absolute values. A voided return ticket is dropped (it never happened).
- Member: Pospal's ``customerUid`` is Pospal's own member id, not ours; a bridge that knows
  the member adds our ``member`` object (``{"phone": …}``, ``{"member_code": …}`` …) to the
  ticket, else the sale is anonymous.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from pos_adapter.vendors.base import VendorTicketError, yuan_to_fen

STORE_TZ = ZoneInfo("Asia/Shanghai")
NON_MONEY_PAY_CODES: frozenset[str] = frozenset()  # per account: see queryAllPayMethod


class PospalAdapter:
    name = "pospal"

    def __init__(self, non_money_pay_codes: frozenset[str] = NON_MONEY_PAY_CODES):
        self.non_money_pay_codes = non_money_pay_codes

    def ticket_id(self, ticket: dict[str, Any]) -> str | None:
        sn = ticket.get("sn")
        return str(sn) if sn is not None else None

    def to_events(self, ticket: dict[str, Any]) -> list[dict[str, Any]]:
        sn = self.ticket_id(ticket)
        if not sn:
            raise VendorTicketError("sn is required")
        kind = str(ticket.get("ticketType", "")).upper()
        voided = str(ticket.get("invalid", 0)) == "1"
        occurred_at = self._time(ticket.get("datetime"))
        if kind == "SELL":
            sale = self._sale(sn, ticket, occurred_at)
            if not voided:
                return [sale]
            void = {
                "type": "return",
                "return_id": f"void:{sn}",
                "sale_id": sn,
                "occurred_at": occurred_at,
                "refund_fen": sale["paid_fen"],
            }
            return [sale, void] if sale["paid_fen"] > 0 else [sale]
        if kind == "SELL_RETURN":
            if voided:
                return []
            original = ticket.get("sellTicketSn")
            if not original:
                raise VendorTicketError(
                    "a return ticket needs sellTicketSn (the sale it returns)",
                    code="ORIGINAL_SALE_REQUIRED",
                )
            return [
                {
                    "type": "return",
                    "return_id": sn,
                    "sale_id": str(original),
                    "occurred_at": occurred_at,
                    "refund_fen": abs(self._paid(ticket)),
                    "lines": self._lines(ticket),
                }
            ]
        raise VendorTicketError(f"ticketType {kind!r} is not SELL or SELL_RETURN")

    def _sale(self, sn: str, ticket: dict[str, Any], occurred_at: str) -> dict[str, Any]:
        lines = self._lines(ticket)
        paid = self._paid(ticket)
        total = max(paid, sum(line["amount_fen"] for line in lines))
        sale: dict[str, Any] = {
            "type": "sale",
            "sale_id": sn,
            "occurred_at": occurred_at,
            "total_fen": total,
            "paid_fen": paid,
            "lines": lines,
        }
        if isinstance(ticket.get("member"), dict):
            sale["member"] = ticket["member"]
        return sale

    def _paid(self, ticket: dict[str, Any]) -> int:
        payments = ticket.get("payments")
        if isinstance(payments, list) and payments:
            return sum(
                abs(yuan_to_fen(p.get("amount", 0), "payments.amount"))
                for p in payments
                if isinstance(p, dict) and p.get("code") not in self.non_money_pay_codes
            )
        return abs(yuan_to_fen(ticket.get("totalAmount", 0), "totalAmount"))

    def _lines(self, ticket: dict[str, Any]) -> list[dict[str, Any]]:
        lines = []
        for item in ticket.get("items") or []:
            sku = item.get("productBarcode") or item.get("productUid")
            if not sku:
                raise VendorTicketError("an item has neither productBarcode nor productUid")
            lines.append(
                {
                    "sku": str(sku),
                    "qty": self._qty(item.get("quantity")),
                    "amount_fen": abs(yuan_to_fen(item.get("totalAmount", 0), "items.totalAmount")),
                }
            )
        return lines

    @staticmethod
    def _qty(value: Any) -> str:
        try:
            return str(abs(Decimal(str(value))))
        except (InvalidOperation, ValueError) as exc:
            raise VendorTicketError("items.quantity is not a number") from exc

    @staticmethod
    def _time(value: Any) -> str:
        try:
            local = datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S")
        except ValueError as exc:
            raise VendorTicketError("datetime must be yyyy-MM-dd HH:mm:ss") from exc
        return local.replace(tzinfo=STORE_TZ).isoformat()
