"""Verified payments and refunds become purchases, members and points — once each.

The platform adapters (``wechat_v2``, ``wechat_v3``, ``alipay``) verify a notification and turn
it into a :class:`PaymentEvent` or :class:`RefundEvent`; these functions apply it. Idempotency
rests on the purchases' unique (source, transaction id) and the refunds' unique refund key, so
replays and concurrent duplicates change nothing.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

from sqlalchemy import Select, bindparam, select

from app.db import unit_of_work, with_retry
from app.errors import DomainError
from app.extensions import db
from app.members.payers import member_for_identities
from app.points.models import Purchase
from app.points.purchases import find_purchase, record_purchase, record_refund
from app.stores.services import store_id_by_code

log = logging.getLogger(__name__)


class NotifyRejected(DomainError):
    """A notification that failed verification: answered with a 4xx, nothing applied."""

    status = 400
    default_code = "NOTIFY_REJECTED"


@dataclass(frozen=True)
class PaymentEvent:
    source: str  # "wechat" | "alipay"
    transaction_id: str  # WeChat transaction_id / Alipay trade_no
    paid_fen: int
    occurred_at: datetime
    payer: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, app, external_id)
    store_code: str | None = None


@dataclass(frozen=True)
class RefundEvent:
    source: str
    transaction_id: str
    refund_key: str
    occurred_at: datetime
    refund_fen: int | None = None  # this refund's amount (WeChat)
    refunded_total_fen: int | None = None  # all refunds so far (Alipay's refund_fee)
    full: bool = False  # the whole remaining amount (Alipay TRADE_CLOSED)


@dataclass(frozen=True)
class PaymentOutcome:
    purchase_id: int
    member_id: int | None
    created: bool


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


@functools.cache
def _recorded_stmt() -> Select:
    return select(Purchase.id, Purchase.member_id).where(
        Purchase.source == bindparam("source"), Purchase.external_id == bindparam("external_id")
    )


def apply_payment(event: PaymentEvent) -> PaymentOutcome:
    """Record a verified payment once: the payer becomes (or is) a member and earns points."""

    def attempt() -> PaymentOutcome:
        with unit_of_work():
            existing = db.session.execute(  # a replay: the columns only, nothing to load
                _recorded_stmt(), {"source": event.source, "external_id": event.transaction_id}
            ).first()
            if existing is not None:
                return PaymentOutcome(existing.id, existing.member_id, False)
            store_id = store_id_by_code(event.store_code)
            member = None
            if event.payer:
                # share-locked: a racing merge cannot strand the credit on an absorbed member
                member = member_for_identities(
                    event.payer, source=f"{event.source}_pay", store_id=store_id, lock=True
                )
            purchase, created = record_purchase(
                source=event.source,
                external_id=event.transaction_id,
                member_id=member.id if member else None,
                store_id=store_id,
                paid_fen=event.paid_fen,
                occurred_at=event.occurred_at,
            )
            return PaymentOutcome(purchase.id, purchase.member_id, created)

    outcome = with_retry(attempt)
    if outcome.created:
        log.info(
            "%s payment %s: %d fen, member %s",
            event.source,
            event.transaction_id,
            event.paid_fen,
            outcome.member_id,
        )
    return outcome


def apply_refund(event: RefundEvent) -> bool:
    """Take back the points a verified refund undoes, once. False when nothing was applied."""

    def attempt() -> bool:
        with unit_of_work():
            purchase = find_purchase(event.source, event.transaction_id, lock=True)
            if purchase is None:
                log.warning(
                    "%s refund %s for unknown payment %s: ignored",
                    event.source,
                    event.refund_key,
                    event.transaction_id,
                )
                return False
            remaining = purchase.paid_fen - purchase.refunded_fen
            if event.full:
                amount = remaining
            elif event.refunded_total_fen is not None:
                amount = event.refunded_total_fen - purchase.refunded_fen
            else:
                amount = event.refund_fen or 0
            if amount <= 0:
                return False  # already covered by earlier refunds
            _, created = record_refund(
                purchase,
                refund_key=event.refund_key,
                refund_fen=amount,
                occurred_at=event.occurred_at,
            )
            return created

    applied = with_retry(attempt)
    if applied:
        log.info("%s refund %s applied", event.source, event.refund_key)
    return applied
