"""The welcome coupon (开卡礼): issued once per person, whatever door they came in by."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from app.common.clock import utcnow
from app.common.hooks import MemberJoined
from app.coupons.issuance import issue_one
from app.coupons.models import Coupon, WelcomeGrant
from app.coupons.state import Actor
from app.coupons.templates import lock_template, welcome_template
from app.errors import Conflict
from app.extensions import db
from app.members.models import Member
from app.members.services import resolve_member
from app.outbox.services import enqueue_message


def issue_welcome_coupon(member_id: int) -> Coupon | None:
    """The welcome coupon, once per person, inside the caller's transaction (never commits).

    Returns the coupon issued now or earlier; None when no active welcome template exists or
    its stock is used up. The member row is locked so two joins cannot both issue it, and the
    grant follows the person through merges (``on_member_merge``).
    """
    member = resolve_member(member_id)
    # NO KEY UPDATE: serialises welcome issuance per member without blocking inserts that
    # merely reference the member (another template's coupons, ledger entries).
    db.session.execute(
        select(Member.id).where(Member.id == member.id).with_for_update(key_share=True)
    )
    existing = db.session.execute(
        select(WelcomeGrant).where(WelcomeGrant.member_id == member.id)
    ).scalar_one_or_none()
    if existing is not None:
        return db.session.get(Coupon, existing.coupon_id)
    issue_key = f"welcome:{member.id}"
    earlier = db.session.execute(
        select(Coupon).where(Coupon.issue_key == issue_key)
    ).scalar_one_or_none()
    if earlier is not None:  # its grant moved on with a merge: still this person's one
        return earlier
    found = welcome_template()
    if found is None:
        return None
    template = lock_template(found.id)
    try:
        coupon = issue_one(
            template,
            member.id,
            source="welcome",
            actor=Actor("system:welcome", "system"),
            issue_key=issue_key,
        )
    except Conflict:  # paused, ended, out of stock: refused before anything was written
        return None
    db.session.add(WelcomeGrant(member_id=member.id, coupon_id=coupon.id, created_at=utcnow()))
    db.session.flush()
    return coupon


def on_members_joined(joined: Sequence[MemberJoined]) -> None:
    """``MEMBERS_JOINED`` listener: each new member's welcome coupon and welcome message."""
    for item in joined:
        coupon = issue_welcome_coupon(item.member_id)
        payload = {"coupon_code": coupon.code} if coupon is not None else {}
        enqueue_message(
            item.member_id, "welcome", payload, dedupe_key=f"member:{item.member_id}:welcome"
        )
