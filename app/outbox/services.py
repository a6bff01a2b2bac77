"""Writing messages: call ``enqueue_message`` inside the business transaction that causes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
from app.common.hooks import PurchaseApplied
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
) -> OutboxMessage:
    """Record a message to send after commit. The same (channel, dedupe_key) is written once.

    Marketing messages to a member who opted out are recorded as ``skipped``, so the decision is
    visible and no later run sends them.
    """
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    existing = db.session.execute(
        select(OutboxMessage).where(
            OutboxMessage.channel == channel, OutboxMessage.dedupe_key == dedupe_key
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    marketing = MESSAGE_KINDS[kind]
    member = db.session.get(Member, member_id)
    opted_out = bool(member is not None and member.marketing_opt_out)
    message = OutboxMessage(
        member_id=member_id,
        kind=kind,
        channel=channel,
        dedupe_key=dedupe_key,
        payload=payload,
        marketing=marketing,
        status="skipped" if marketing and opted_out else "pending",
        last_error="member opted out of marketing" if marketing and opted_out else None,
        next_attempt_at=utcnow(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        existing = db.session.execute(
            select(OutboxMessage).where(
                OutboxMessage.channel == channel, OutboxMessage.dedupe_key == dedupe_key
            )
        ).scalar_one()
        return existing
    return message


def enqueue_messages(
    messages: Sequence[tuple[int, str, dict[str, Any], str]],
    *,
    channel: str = DEFAULT_CHANNEL,
    new_keys: bool = False,
) -> int:
    """``enqueue_message`` for many ``(member_id, kind, payload, dedupe_key)`` at once.

    For batches and hot paths: one query for the keys already written, one for the opt-outs of
    the members getting marketing messages, one ``INSERT``. Meant for keys of rows the caller's
    own transaction has just created (a batch's new purchases): a concurrent duplicate fails
    that transaction with ``IntegrityError`` instead of being absorbed, and the caller retries
    it. ``new_keys`` skips the lookup when every key names such a row (it cannot have been
    written yet). Returns how many messages were written.
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
                select(OutboxMessage.dedupe_key).where(
                    OutboxMessage.channel == channel, OutboxMessage.dedupe_key.in_(keys)
                )
            )
        )
    marketing_to = {m for m, kind, _, _ in messages if MESSAGE_KINDS[kind]}
    opted_out: set[int] = set()
    if marketing_to:
        opted_out = set(
            db.session.scalars(
                select(Member.id).where(
                    Member.id.in_(marketing_to), Member.marketing_opt_out.is_(True)
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
    if rows:
        db.session.execute(insert(OutboxMessage.__table__), rows)
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
