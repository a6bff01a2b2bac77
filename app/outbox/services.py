"""Writing messages: call ``enqueue_message`` inside the business transaction that causes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
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
    messages: Sequence[tuple[int, str, dict[str, Any], str]], *, channel: str = DEFAULT_CHANNEL
) -> list[OutboxMessage]:
    """``enqueue_message`` for many ``(member_id, kind, payload, dedupe_key)`` at once.

    For batches: one query for the keys already written, one for the members' opt-outs, one
    flush. Meant for keys of rows the caller's own transaction has just created (a batch's new
    purchases): a concurrent duplicate fails that transaction with ``IntegrityError`` instead
    of being absorbed, and the caller retries it.
    """
    for _, kind, _, _ in messages:
        if kind not in MESSAGE_KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
    if not messages:
        return []
    keys = [key for _, _, _, key in messages]
    found = {
        m.dedupe_key: m
        for m in db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.channel == channel, OutboxMessage.dedupe_key.in_(keys)
            )
        )
    }
    opted_out = set(
        db.session.scalars(
            select(Member.id).where(
                Member.id.in_({m for m, _, _, _ in messages}), Member.marketing_opt_out.is_(True)
            )
        )
    )
    now = utcnow()
    written = []
    for member_id, kind, payload, key in messages:
        if key not in found:
            skip = MESSAGE_KINDS[kind] and member_id in opted_out
            found[key] = OutboxMessage(
                member_id=member_id,
                kind=kind,
                channel=channel,
                dedupe_key=key,
                payload=payload,
                marketing=MESSAGE_KINDS[kind],
                status="skipped" if skip else "pending",
                last_error="member opted out of marketing" if skip else None,
                next_attempt_at=now,
            )
            db.session.add(found[key])
        written.append(found[key])
    db.session.flush()
    return written
