"""Writing messages: ``enqueue_messages`` inside the business transaction that causes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from app.common.clock import utcnow
from app.common.hooks import PurchaseApplied
from app.common.partitions import rows_by_key
from app.db import among, insert_rows
from app.extensions import db
from app.members.models import Member
from app.outbox.models import MESSAGE_KINDS, OutboxMessage

DEFAULT_CHANNEL = "wechat_subscribe"


def enqueue_message(
    member_id: int,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str,
    channel: str = DEFAULT_CHANNEL,
) -> None:
    """:func:`enqueue_messages` for one message."""
    enqueue_messages([(member_id, kind, payload, dedupe_key)], channel=channel)


def enqueue_messages(
    messages: Sequence[tuple[int, str, dict[str, Any], str]],
    *,
    channel: str = DEFAULT_CHANNEL,
    new_keys: bool = False,
) -> int:
    """The one way a member message is queued: ``(member_id, kind, payload, dedupe_key)``
    rows written to the outbox inside the caller's transaction, delivered after commit.

    The same (channel, dedupe_key) is written once: keys already written are skipped, and a
    concurrent duplicate is absorbed by ``INSERT … ON CONFLICT DO NOTHING``. Marketing messages
    to a member who opted out are recorded as ``skipped``, so the decision is visible and no
    later run sends them. Set-based: one query for the keys already written, one for the
    opt-outs, one ``INSERT``. ``new_keys`` skips the first query when every key names a row
    the caller's transaction has just created. Returns how many rows were offered for insert.
    """
    for _, kind, _, _ in messages:
        if kind not in MESSAGE_KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
    if not messages:
        return 0
    keys = [key for _, _, _, key in messages]
    written: set[str] = set()
    if not new_keys:
        written = set(
            db.session.scalars(
                rows_by_key(
                    OutboxMessage.__table__,
                    (OutboxMessage.dedupe_key,),
                    {"channel": channel},
                    "dedupe_key",
                    sorted(set(keys)),
                    db.session.get_bind().dialect.name,
                )
            )
        )
    marketing_to = {m for m, kind, _, _ in messages if MESSAGE_KINDS[kind]}
    opted_out: set[int] = set()
    if marketing_to:
        opted_out = set(
            db.session.scalars(
                select(Member.id).where(
                    among(Member.id, marketing_to), Member.marketing_opt_out.is_(True)
                )
            )
        )
    now = utcnow()
    rows = []
    for member_id, kind, payload, key in messages:
        if key in written:
            continue
        written.add(key)
        skip = MESSAGE_KINDS[kind] and member_id in opted_out
        rows.append(
            {
                "member_id": member_id,
                "kind": kind,
                "channel": channel,
                "dedupe_key": key,
                "payload": payload,
                "marketing": MESSAGE_KINDS[kind],
                "status": "skipped" if skip else "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "lease_until": None,
                "last_error": "member opted out of marketing" if skip else None,
                "created_at": now,
                "sent_at": None,
            }
        )
    insert_rows(OutboxMessage.__table__, rows, conflict=("channel", "dedupe_key"))
    return len(rows)


def on_purchases_applied(items: Sequence[PurchaseApplied]) -> None:
    """``PURCHASES_APPLIED`` listener: a "points earned" message for each purchase that earned."""
    enqueue_messages(
        [
            (
                item.member_id,
                "points_earned",
                {"points": item.points, "balance": item.balance, "paid_fen": item.payer_fen},
                f"purchase:{item.purchase_id}:earned",
            )
            for item in items
            if not item.is_refund and item.points > 0 and item.balance is not None
        ],
        new_keys=True,  # keys of purchases the applying transaction has just created
    )
