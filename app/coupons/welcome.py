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
from app.db import among
from app.errors import Conflict
from app.extensions import db
from app.members.models import Member
from app.members.services import resolve_member
from app.outbox.services import enqueue_messages


def issue_welcome_coupon(member_id: int) -> Coupon | None:
    """:func:`issue_welcome_coupons` for one member: the coupon issued now or earlier."""
    member = resolve_member(member_id)
    code = issue_welcome_coupons([member.id]).get(member.id)
    if code is None:
        return None
    return db.session.execute(select(Coupon).where(Coupon.code == code)).scalar_one()


def issue_welcome_coupons(member_ids: Sequence[int]) -> dict[int, str]:
    """The welcome coupon of each (live) member, once per person, inside the caller's
    transaction (never commits): ``{member_id: coupon code}`` for those who have one, issued
    now or earlier. Members without one get none when no active welcome template exists or
    its stock is used up.

    Set-based: the members are locked in id order in one statement, one query finds the
    grants and one the coupons issued under their keys; only members still without one get a
    coupon from the template (locked once). The member lock (``NO KEY UPDATE``) means two
    joins cannot both issue it, without blocking inserts that merely reference the member
    (another template's coupons, ledger entries); the grant follows the person through merges
    (``on_member_merge``).
    """
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    db.session.execute(
        select(Member.id)
        .where(among(Member.id, ids))
        .order_by(Member.id)
        .with_for_update(key_share=True)
    )
    codes: dict[int, str] = {
        member_id: code
        for member_id, code in db.session.execute(
            select(WelcomeGrant.member_id, Coupon.code)
            .join(Coupon, Coupon.id == WelcomeGrant.coupon_id)
            .where(among(WelcomeGrant.member_id, ids))
        )
    }
    keys = {f"welcome:{m}": m for m in ids if m not in codes}
    if keys:  # a grant that moved on with a merge: the coupon is still this person's one
        for key, code in db.session.execute(
            select(Coupon.issue_key, Coupon.code).where(among(Coupon.issue_key, keys))
        ):
            codes[keys[key]] = code
    wanted = [m for m in ids if m not in codes]
    if not wanted:
        return codes
    found = welcome_template()
    if found is None:
        return codes
    template = lock_template(found.id)
    now = utcnow()
    for member_id in wanted:
        try:
            coupon = issue_one(
                template,
                member_id,
                source="welcome",
                actor=Actor("system:welcome", "system"),
                issue_key=f"welcome:{member_id}",
            )
        except Conflict:  # paused, ended, out of stock: refused before anything was written
            continue
        db.session.add(WelcomeGrant(member_id=member_id, coupon_id=coupon.id, created_at=now))
        codes[member_id] = coupon.code
    db.session.flush()
    return codes


def on_members_joined(joined: Sequence[MemberJoined]) -> None:
    """``MEMBERS_JOINED`` listener: each new member's welcome coupon and welcome message."""
    codes = issue_welcome_coupons([item.member_id for item in joined])
    enqueue_messages(
        [
            (
                item.member_id,
                "welcome",
                {"coupon_code": codes[item.member_id]} if item.member_id in codes else {},
                f"member:{item.member_id}:welcome",
            )
            for item in joined
        ]
    )
