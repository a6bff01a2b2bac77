"""Consent to store a phone: which policy version, when, through which channel.

Recorded inside the transaction that stores the phone, before it: a phone is never held
without a consent row for its member. The policy version is the brand's setting
``PRIVACY_POLICY_VERSION``. Consents move with a merge and stay after an erasure (they hold
no personal data: they are the record that the member agreed).
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select, update

from app.common.clock import utcnow
from app.extensions import db
from app.members.models import MemberConsent

# how a member who arrived by ``source`` gave the phone
_CHANNEL_BY_SOURCE = {"import": "import", "pos": "pos", "admin": "admin"}


def policy_version() -> str:
    return str(current_app.config.get("PRIVACY_POLICY_VERSION") or "1")


def record_consent(member_id: int, channel: str) -> MemberConsent:
    consent = MemberConsent(
        member_id=member_id,
        policy_version=policy_version(),
        channel=channel[:16],
        granted_at=utcnow(),
    )
    db.session.add(consent)
    db.session.flush()
    return consent


def channel_for_source(source: str) -> str:
    return _CHANNEL_BY_SOURCE.get(source, source)


def consents_of(member_id: int) -> list[MemberConsent]:
    return list(
        db.session.scalars(
            select(MemberConsent)
            .where(MemberConsent.member_id == member_id)
            .order_by(MemberConsent.id)
        )
    )


def on_member_merge(absorbed_id: int, survivor_id: int) -> None:
    """The survivor keeps the consents given through either member."""
    db.session.execute(
        update(MemberConsent)
        .where(MemberConsent.member_id == absorbed_id)
        .values(member_id=survivor_id)
    )
