"""The engine's entry for platform notifications: store, then apply (inline or by the worker).

``receive`` commits the verified events to the journal; that commit is what the platform's
``SUCCESS`` means. With ``ENGINE_APPLY=inline`` (the embedded default: one process, SQLite, no
Redis) the same request then applies them; with ``ENGINE_APPLY=worker`` (production) the
``flask engine apply`` worker does (idle, it looks at the journal every 20-200 ms; under load
it gathers ``ENGINE_APPLY_GATHER_MS`` of notifications into each batch). Either way a failure
to apply leaves the rows pending for the next pass: they are stored, so the notification is
not lost.

A payer who opens the mini-program right after paying is never told they are not a member:
login and ``GET /mp/v1/me`` first apply the payer's own pending rows
(:func:`apply_for_identities`), then answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.db import transaction
from app.engine.applier import apply_pending
from app.engine.journal import journal, store_committed
from app.engine.models import MoneyEvent
from app.extensions import db
from app.members.models import MemberIdentity
from app.members.payers import payer_key
from app.payments.services import MoneyEventIn

log = logging.getLogger(__name__)


def receive(events: Sequence[MoneyEventIn]) -> list[int]:
    """Store verified events once (committed); apply them now when inline. Their new ids."""
    if db.engine.dialect.name == "postgresql":
        # one idempotent statement (ON CONFLICT DO NOTHING), its own transaction, on the
        # process's journal connection: one round trip; nothing in it can race, so nothing
        # for the runner to retry
        new = store_committed(events)
    else:  # SQLite has one writer: the session's own transaction
        new = transaction(lambda: journal(events))
    if not new:
        return new
    if current_app.config.get("ENGINE_APPLY") == "worker":
        return new  # the applier polls every few milliseconds: nothing more to pay per notify
    try:
        apply_pending(ids=new)
    except SQLAlchemyError:  # stored: the next pass (or the payer's next visit) applies it
        log.exception("journal events %s stored but not applied yet", new)
    return new


def apply_for_identities(identities: Sequence[tuple[str, str, str]]) -> int:
    """Apply the pending journal rows of these payer identities now; how many were applied."""
    keys = [payer_key(i) for i in identities]
    if not keys:
        return 0
    waiting = db.session.execute(
        select(MoneyEvent.id)
        .where(MoneyEvent.state == "pending", MoneyEvent.payer_key.in_(keys))
        .limit(1)
    ).first()
    db.session.rollback()  # end the read: the apply runs its own transaction
    if waiting is None:
        return 0
    return apply_pending(payer_keys=keys)


def apply_for_member(member_id: int) -> int:
    """:func:`apply_for_identities` for every identity a member holds."""
    rows = db.session.execute(
        select(MemberIdentity.kind, MemberIdentity.app, MemberIdentity.external_id).where(
            MemberIdentity.member_id == member_id
        )
    ).all()
    return apply_for_identities(rows)
