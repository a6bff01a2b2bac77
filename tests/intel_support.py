"""Building a small brand for the customer-intelligence tests, through the real services."""

from __future__ import annotations

from datetime import datetime
from itertools import count

from app.common.clock import SHANGHAI, frozen
from app.db import unit_of_work
from app.members.services import create_member
from app.points.purchases import find_purchase, record_purchase, record_refund
from app.stores.services import create_store

_ids = count(1)


def at(y: int, m: int, d: int, hour: int = 12) -> datetime:
    """A Shanghai wall-clock time."""
    return datetime(y, m, d, hour, tzinfo=SHANGHAI)


def store(code: str, city: str = "上海") -> int:
    return create_store(code, f"store {code}", city).id


def member(when: datetime, *, source: str = "pos", store_id: int | None = None, phone=None) -> int:
    with frozen(when), unit_of_work():
        return create_member(source=source, phone=phone, store_id=store_id).id


def buy(member_id: int | None, store_id: int | None, fen: int, when: datetime) -> str:
    """A till sale of ``fen`` paid, recorded at ``when`` (as if synced at once)."""
    external_id = f"sale-{next(_ids)}"
    with frozen(when), unit_of_work():
        record_purchase(
            source="pos",
            external_id=external_id,
            member_id=member_id,
            store_id=store_id,
            paid_fen=fen,
            occurred_at=when,
        )
    return external_id


def refund(external_id: str, fen: int, when: datetime) -> None:
    with frozen(when), unit_of_work():
        purchase = find_purchase("pos", external_id)
        record_refund(purchase, refund_key=f"refund-{next(_ids)}", refund_fen=fen, occurred_at=when)
