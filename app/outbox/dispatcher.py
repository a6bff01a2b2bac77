"""Delivering outbox messages: claim with a lease, send, record the outcome.

Each message is claimed in its own short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so several dispatchers share the work), sent, then marked. A dispatcher killed mid-batch leaves
its claimed message ``sending`` until the lease ends; the next run sends it again with the same
delivery id. Failures are retried with backoff, up to ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import or_, select, update

from app.common.clock import utcnow
from app.extensions import db
from app.outbox.channels import DeliveryError, DeliverySkipped, get_channel
from app.outbox.models import OutboxMessage

log = logging.getLogger(__name__)
DEFAULT_LEASE_SECONDS = 60
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 6 * 3600))


def _claim_next() -> OutboxMessage | None:
    now = utcnow()
    message = db.session.execute(
        select(OutboxMessage)
        .where(
            or_(
                (OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now),
                (OutboxMessage.status == "sending") & (OutboxMessage.lease_until < now),
            )
        )
        .order_by(OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if message is None:
        db.session.rollback()
        return None
    message.status = "sending"
    message.attempts += 1
    lease = int(current_app.config.get("OUTBOX_LEASE_SECONDS") or DEFAULT_LEASE_SECONDS)
    message.lease_until = now + timedelta(seconds=lease)
    db.session.commit()
    return message


def dispatch_outbox(batch_size: int = 100) -> dict[str, Any]:
    counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    for _ in range(batch_size):
        message = _claim_next()
        if message is None:
            break
        outcome = _deliver(message)
        counts[outcome] += 1
    return counts


def _deliver(message: OutboxMessage) -> str:
    message_id = message.id
    try:
        get_channel(message.channel).send(message, delivery_id=f"hy-outbox-{message_id}")
    except DeliverySkipped as exc:
        db.session.rollback()
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(status="skipped", lease_until=None, last_error=str(exc)[:2000])
        )
        db.session.commit()
        return "skipped"
    except DeliveryError as exc:
        db.session.rollback()
        return _record_failure(message_id, str(exc), exc.retryable)
    except Exception as exc:
        db.session.rollback()
        log.exception("outbox message %s: unexpected error in channel", message_id)
        return _record_failure(message_id, f"unexpected: {type(exc).__name__}", True)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status="sent", sent_at=utcnow(), lease_until=None, last_error=None)
    )
    db.session.commit()
    return "sent"


def _record_failure(message_id: int, error: str, retryable: bool) -> str:
    message = db.session.get(OutboxMessage, message_id)
    assert message is not None
    give_up = not retryable or message.attempts >= MAX_ATTEMPTS
    message.status = "failed" if give_up else "pending"
    message.last_error = error[:2000]
    message.lease_until = None
    message.next_attempt_at = utcnow() + backoff(message.attempts)
    db.session.commit()
    log.warning(
        "outbox message %s: %s (%s)", message_id, error, "gave up" if give_up else "will retry"
    )
    return "failed" if give_up else "retry"
