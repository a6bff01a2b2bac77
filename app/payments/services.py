"""Verified payment notifications as money events for the journal.

The platform adapters (``wechat_v2``, ``wechat_v3``, ``alipay``) verify a notification and turn
it into :class:`PaymentEvent` / :class:`RefundEvent` values; :func:`receive` stores them in the
money journal (``app.engine``), which is what the notification's ``SUCCESS`` acknowledges.
The engine's applier then applies each of them exactly once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from app.errors import DomainError

log = logging.getLogger(__name__)


class NotifyRejected(DomainError):
    """A notification that failed verification: answered with a 4xx, nothing stored."""

    status = 400
    default_code = "NOTIFY_REJECTED"


@dataclass(frozen=True)
class PaymentEvent:
    source: str  # "wechat" | "alipay"
    transaction_id: str  # WeChat transaction_id / Alipay trade_no
    paid_fen: int  # the payer's own money: cash_fee / payer_total / buyer_pay_amount
    occurred_at: datetime
    payer: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, app, external_id)
    store_code: str | None = None
    total_fen: int | None = None  # the order total (None: the payer paid all of it)

    @property
    def event_key(self) -> str:
        return f"{self.source}:pay:{self.transaction_id}"

    def to_payload(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "transaction_id": self.transaction_id,
            "paid_fen": self.paid_fen,
            "total_fen": self.total_fen,
            "occurred_at": self.occurred_at.isoformat(),
            "payer": [list(p) for p in self.payer],
            "store_code": self.store_code,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> PaymentEvent:
        return cls(
            source=data["source"],
            transaction_id=data["transaction_id"],
            paid_fen=int(data["paid_fen"]),
            total_fen=data.get("total_fen"),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            payer=[(k, a, e) for k, a, e in data.get("payer") or []],
            store_code=data.get("store_code"),
        )


@dataclass(frozen=True)
class RefundEvent:
    source: str
    transaction_id: str
    refund_key: str
    occurred_at: datetime
    refund_fen: int | None = None  # this refund's amount (WeChat)
    refunded_total_fen: int | None = None  # all refunds so far (Alipay's refund_fee)
    full: bool = False  # the whole remaining amount (Alipay TRADE_CLOSED)

    @property
    def event_key(self) -> str:
        return self.refund_key

    def to_payload(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "transaction_id": self.transaction_id,
            "refund_key": self.refund_key,
            "occurred_at": self.occurred_at.isoformat(),
            "refund_fen": self.refund_fen,
            "refunded_total_fen": self.refunded_total_fen,
            "full": self.full,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> RefundEvent:
        return cls(
            source=data["source"],
            transaction_id=data["transaction_id"],
            refund_key=data["refund_key"],
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            refund_fen=data.get("refund_fen"),
            refunded_total_fen=data.get("refunded_total_fen"),
            full=bool(data.get("full")),
        )


MoneyEventIn = PaymentEvent | RefundEvent


def store_code_from(attach: str | None) -> str | None:
    """``{"store": "<code>"}`` from WeChat's ``attach`` / Alipay's ``passback_params``."""
    if not attach:
        return None
    for text in (attach, unquote(attach)):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("store"), str):
            return value["store"]
    return None
