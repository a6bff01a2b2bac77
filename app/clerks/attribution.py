"""New-member attribution: each clerk's signed QR payload, and who brought whom in.

The payload is short enough for a WeChat mini-program code's ``scene`` (at most 32
characters): ``<clerk id, base 36>.<16 characters of HMAC-SHA256>``. A member who joined
within ``ATTRIBUTION_WINDOW`` before presenting it is attributed to that clerk and the clerk's
store. The first attribution wins; later ones change nothing.

Joining is the person's, not an account's: a member's join time is the earliest creation of
it and of every member merged into it. Binding a phone is not joining. So a fresh WeChat login
that presents the QR and then binds an old member's phone (merging into that older member)
does not count: the merge re-evaluates the attribution (:func:`on_member_merge`, a merge step)
and drops it when the surviving person joined before the window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.clerks.models import MemberAttribution
from app.common.clock import utcnow
from app.db import unit_of_work
from app.errors import ValidationFailed
from app.extensions import db
from app.members.models import Member
from app.members.services import merged_family, resolve_member
from app.stores.models import Clerk, Store

ATTRIBUTION_WINDOW = timedelta(hours=24)
_CLERK_PART = re.compile(r"^[0-9a-z]{1,12}$")


def _signature(clerk_part: str) -> str:
    key = hashlib.sha256(f"clerk-qr:{current_app.config['SECRET_KEY']}".encode()).digest()
    mac = hmac.new(key, clerk_part.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()[:16]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def clerk_qr_payload(clerk_id: int) -> str:
    part = _base36(clerk_id)
    return f"{part}.{_signature(part)}"


def clerk_from_payload(payload: str) -> Clerk:
    """The active clerk a payload names, or ``INVALID_ATTRIBUTION_PAYLOAD``."""
    part, _, signature = (payload or "").partition(".")
    valid = bool(_CLERK_PART.match(part)) and hmac.compare_digest(signature, _signature(part))
    clerk = db.session.get(Clerk, int(part, 36)) if valid else None
    if clerk is None or clerk.status != "active":
        raise ValidationFailed(
            "not a valid clerk QR payload",
            code="INVALID_ATTRIBUTION_PAYLOAD",
            details={"payload": ["not valid"]},
        )
    return clerk


@dataclass(frozen=True)
class AttributionResult:
    status: str  # attributed | already_attributed | not_eligible
    attribution: MemberAttribution | None


def joined_at(member_id: int) -> datetime:
    """When the person behind a live member joined: the earliest of its merged family."""
    return db.session.scalar(
        select(func.min(Member.created_at)).where(Member.id.in_(merged_family(member_id)))
    )


def _recently_joined(member: Member, now: datetime) -> bool:
    return now - joined_at(member.id) <= ATTRIBUTION_WINDOW


def on_member_merge(absorbed_id: int, survivor_id: int) -> None:
    """Merge step (after the clerks' step moved the attribution to the survivor): the
    attribution stands only if the surviving person joined within the window before it."""
    attribution = db.session.get(MemberAttribution, survivor_id)
    if attribution is None:
        return
    if attribution.attributed_at - joined_at(survivor_id) > ATTRIBUTION_WINDOW:
        db.session.delete(attribution)
        db.session.flush()


def attribute_member(member_id: int, payload: str) -> AttributionResult:
    """Attribute a member who joined or bound a phone through a clerk's QR code."""
    clerk = clerk_from_payload(payload)
    now = utcnow()
    member = resolve_member(member_id)
    existing = db.session.get(MemberAttribution, member.id)
    if existing is not None:
        return AttributionResult("already_attributed", existing)
    if not _recently_joined(member, now):
        return AttributionResult("not_eligible", None)
    try:
        with unit_of_work():
            attribution = MemberAttribution(
                member_id=member.id, clerk_id=clerk.id, store_id=clerk.store_id, attributed_at=now
            )
            db.session.add(attribution)
    except IntegrityError:  # a racing first attribution won
        return AttributionResult("already_attributed", db.session.get(MemberAttribution, member.id))
    return AttributionResult("attributed", attribution)


def attribution_report(since: datetime, until: datetime) -> list[dict]:
    """New members attributed per store and clerk within ``[since, until)``."""
    rows = db.session.execute(
        select(Store.code, Store.name, Clerk.id, Clerk.name, func.count())
        .select_from(MemberAttribution)
        .join(Clerk, Clerk.id == MemberAttribution.clerk_id)
        .join(Store, Store.id == MemberAttribution.store_id)
        .where(MemberAttribution.attributed_at >= since, MemberAttribution.attributed_at < until)
        .group_by(Store.code, Store.name, Clerk.id, Clerk.name)
        .order_by(Store.code, Clerk.id)
    ).all()
    return [
        {"store": code, "store_name": sname, "clerk_id": cid, "clerk_name": cname, "new_members": n}
        for code, sname, cid, cname, n in rows
    ]
