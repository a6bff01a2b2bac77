"""What a clerk may do with a member: look up (with the customer present), then, for a limited
time, view, tag and annotate that member. Any other member id is answered as if it did not
exist. Every request for a member is written to the access log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.clerks.auth import ClerkContext
from app.clerks.models import ClerkAccessGrant, ClerkAccessLog, ClerkNote
from app.clerks.ratelimit import count_or_refuse
from app.common.clock import utcnow
from app.common.phone import mask_phone, mask_phones_in_text
from app.coupons.queries import coupons_for_till
from app.db import unit_of_work, with_retry
from app.errors import NotFound
from app.extensions import db
from app.members.codes import resolve_member_code
from app.members.models import Member
from app.members.services import find_by_phone, resolve_member
from app.points.models import Purchase
from app.points.services import balance_of
from app.stores.models import Clerk, Store
from app.tags.services import Actor, change_member_tags, member_tags
from app.tiers.services import tier_view

GRANT_TTL = timedelta(minutes=30)
LOOKUPS_PER_HOUR = 120  # per clerk: a counter serves customers, it does not enumerate phones
RECENT_PURCHASE_DAYS = 90
NOTES_SHOWN = 20
NOTE_MAX_LENGTH = 500


# --- access ----------------------------------------------------------------------------------
class MemberNotFound(NotFound):
    default_code = "MEMBER_NOT_FOUND"


def _not_found() -> MemberNotFound:
    return MemberNotFound("member not found")


def _log(ctx: ClerkContext, action: str, outcome: str, asked: int | None, live: int | None):
    db.session.add(
        ClerkAccessLog(
            clerk_id=ctx.clerk_id,
            store_id=ctx.store_id,
            member_id=asked,
            resolved_member_id=live,
            action=action,
            outcome=outcome,
            created_at=utcnow(),
        )
    )


def _refuse(ctx: ClerkContext, action: str, asked: int | None, outcome: str) -> MemberNotFound:
    with unit_of_work():
        _log(ctx, action, outcome, asked, None)
    return _not_found()


def lookup_member(
    ctx: ClerkContext, *, phone: str | None = None, member_code: str | None = None
) -> dict[str, Any]:
    """Find the customer at the counter and grant this clerk access for ``GRANT_TTL``."""
    count_or_refuse(
        f"clerk-lookups:{ctx.clerk_id}",
        limit=LOOKUPS_PER_HOUR,
        window_seconds=3600,
        code="LOOKUP_RATE_LIMITED",
        message="too many lookups; try again later",
    )
    if phone is not None:
        member, via = find_by_phone(phone), "phone"
    else:
        try:
            member, via = resolve_member(resolve_member_code(member_code or "")), "member_code"
        except NotFound:  # unknown or expired: MEMBER_CODE_INVALID tells the clerk to rescan
            _refuse(ctx, "lookup", None, "not_found")
            raise
    if member is None:
        raise _refuse(ctx, "lookup", None, "not_found")
    now = utcnow()
    with unit_of_work():
        db.session.add(
            ClerkAccessGrant(
                clerk_id=ctx.clerk_id,
                store_id=ctx.store_id,
                member_id=member.id,
                via=via,
                granted_at=now,
                expires_at=now + GRANT_TTL,
            )
        )
        _log(ctx, "lookup", "granted", member.id, member.id)
    return member_view(ctx, member.id)


def _grant_expiry(ctx: ClerkContext, member_id: int) -> datetime | None:
    return db.session.scalar(
        select(func.max(ClerkAccessGrant.expires_at)).where(
            ClerkAccessGrant.clerk_id == ctx.clerk_id,
            ClerkAccessGrant.store_id == ctx.store_id,
            ClerkAccessGrant.member_id == member_id,
            ClerkAccessGrant.expires_at > utcnow(),
        )
    )


def require_access(ctx: ClerkContext, member_id: int, action: str) -> int:
    """The live member behind ``member_id`` if this clerk holds a grant for it, else 404."""
    try:
        live = resolve_member(member_id).id
    except NotFound:
        raise _refuse(ctx, action, member_id, "denied") from None
    if _grant_expiry(ctx, live) is None:
        raise _refuse(ctx, action, member_id, "denied")
    return live


def view_member(ctx: ClerkContext, member_id: int) -> dict[str, Any]:
    live = require_access(ctx, member_id, "view")
    with unit_of_work():
        _log(ctx, "view", "ok", member_id, live)
    return member_view(ctx, live)


def tag_member(
    ctx: ClerkContext, member_id: int, *, add: list[int], remove: list[int]
) -> dict[str, Any]:
    live = require_access(ctx, member_id, "tag")
    actor = Actor(source="clerk", clerk_id=ctx.clerk_id, store_id=ctx.store_id)

    def work() -> None:
        with unit_of_work():
            change_member_tags(live, add=add, remove=remove, actor=actor)
            _log(ctx, "tag", "ok", member_id, live)

    with_retry(work)
    return member_view(ctx, live)


def add_note(ctx: ClerkContext, member_id: int, text: str) -> ClerkNote:
    """Record a note; phone numbers in it are masked, so no response ever carries one."""
    live = require_access(ctx, member_id, "note")
    with unit_of_work():
        note = ClerkNote(
            member_id=live,
            clerk_id=ctx.clerk_id,
            store_id=ctx.store_id,
            text=mask_phones_in_text(text.strip()),
            created_at=utcnow(),
        )
        db.session.add(note)
        _log(ctx, "note", "ok", member_id, live)
    return note


# --- the clerk's view of a member --------------------------------------------------------------
def merged_ids(member_id: int) -> list[int]:
    """The member and every member merged into it (directly or through others)."""
    found, frontier = [member_id], [member_id]
    while frontier:
        frontier = list(
            db.session.scalars(select(Member.id).where(Member.merged_into_id.in_(frontier)))
        )
        found.extend(frontier)
    return found


def member_view(ctx: ClerkContext, member_id: int) -> dict[str, Any]:
    member = db.session.get(Member, member_id)
    if member is None:
        raise _not_found()
    ids = merged_ids(member.id)
    view: dict[str, Any] = {
        "id": member.id,
        "phone_masked": mask_phone(member.phone),
        "name": mask_phones_in_text(member.name) if member.name else None,
        "member_since": member.created_at,
        "last_visit_at": db.session.scalar(
            select(func.max(Purchase.occurred_at)).where(Purchase.member_id.in_(ids))
        ),
        "points_balance": balance_of(member.id),
        "tier": tier_view(member.id),
        "store_purchases": _store_purchases(ctx.store_id, ids),
        "tags": [mt.tag for mt in member_tags(member.id)],
        "notes": _recent_notes(member.id),
        "access_expires_at": _grant_expiry(ctx, member.id),
        "coupons_available": len(coupons_for_till(member.id, ctx.store_id)),
    }
    return view


def _store_purchases(store_id: int, member_ids: list[int]) -> dict[str, Any]:
    since = utcnow() - timedelta(days=RECENT_PURCHASE_DAYS)
    count, paid, last = db.session.execute(
        select(
            func.count(Purchase.id),
            func.coalesce(func.sum(Purchase.paid_fen - Purchase.refunded_fen), 0),
            func.max(Purchase.occurred_at),
        ).where(
            Purchase.member_id.in_(member_ids),
            Purchase.store_id == store_id,
            Purchase.occurred_at >= since,
        )
    ).one()
    return {
        "days": RECENT_PURCHASE_DAYS,
        "count": int(count),
        "net_paid_fen": int(paid),
        "last_at": last,
    }


def _recent_notes(member_id: int) -> list[dict[str, Any]]:
    rows = db.session.execute(
        select(ClerkNote, Clerk.name, Store.code)
        .join(Clerk, Clerk.id == ClerkNote.clerk_id)
        .join(Store, Store.id == ClerkNote.store_id)
        .where(ClerkNote.member_id == member_id)
        .order_by(ClerkNote.id.desc())
        .limit(NOTES_SHOWN)
    ).all()
    return [
        {"id": n.id, "text": n.text, "clerk_name": name, "store": code, "created_at": n.created_at}
        for n, name, code in rows
    ]
