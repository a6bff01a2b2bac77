"""A member's personal-data rights: everything held about them (export), and erasure.

Erasure (the member's ``DELETE /mp/v1/me`` or HQ's ``POST /admin/v1/members/{id}/erase``), in
one transaction, for the member and every member ever merged into it:

- personal data goes: phone, name, birthday, every identity (phone, openids, Alipay ids),
  clerk notes and tags (and their history), clerk access grants, message payloads, and the
  identities recorded in merge records;
- till holds are released, then the balance is forfeited by one ledger entry (kind
  ``adjust``, ``ref_type`` ``erasure``) and unused coupons are voided;
- the member becomes ``erased``: its tokens stop working, its id resolves to nothing a till
  or clerk can use, and the same phone or WeChat account can join again as a new member;
- what stays is what the books need and holds no personal data: the ledger, purchases and
  sales by member id, consents (the record of agreement) and one ``member_erasures`` row.

Erasing twice returns the first erasure.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select, update

from app.clerks.models import ClerkAccessGrant, ClerkNote, MemberAttribution
from app.common.clock import utcnow
from app.coupons.gifting import lock_pending_gift
from app.coupons.models import Coupon
from app.coupons.state import Actor as CouponActor
from app.coupons.state import transition
from app.db import unit_of_work, with_retry
from app.extensions import db
from app.members.consent import consents_of
from app.members.merge import lock_members
from app.members.models import (
    Member,
    MemberErasure,
    MemberIdentity,
    MemberMerge,
)
from app.members.services import merged_family, resolve_member
from app.outbox.models import OutboxMessage
from app.points.models import PointsEntry, Purchase
from app.points.services import balance_of, post_entry
from app.pos.models import PosSale
from app.tags.models import MemberTag, MemberTagEvent, TagRuleApplication

log = logging.getLogger(__name__)
ERASED = "erased"


def erase_member(member_id: int, *, requested_by: str, actor: str | None = None) -> MemberErasure:
    """Erase the live member behind ``member_id`` (see the module docstring). Owns its
    transaction; idempotent."""

    def attempt() -> MemberErasure:
        with unit_of_work():
            member = resolve_member(member_id)
            done = db.session.scalar(
                select(MemberErasure).where(MemberErasure.member_id == member.id)
            )
            if done is not None:
                return done
            lock_members(member.id)
            family = merged_family(member.id)
            _release_till_holds(family)
            coupons = _void_coupons(member.id, actor or requested_by)
            forfeited = _forfeit_points(member.id, requested_by, actor)
            _erase_personal_data(member, family)
            erasure = MemberErasure(
                member_id=member.id,
                requested_by=requested_by,
                actor=actor,
                points_forfeited=forfeited,
                coupons_voided=coupons,
                erased_at=utcnow(),
            )
            db.session.add(erasure)
            db.session.flush()
        log.info("member %s erased at the request of %s", member.id, requested_by)
        return erasure

    return with_retry(attempt)


def _release_till_holds(family: list[int]) -> None:
    from app.pos.redemptions import release_held_for_members

    release_held_for_members(family)


def _void_coupons(member_id: int, who: str) -> int:
    """Unused coupons (available, or in a pending gift, whose link then stops working)."""
    actor = CouponActor(f"erasure:{who}"[:64], "admin" if who != "member" else "miniprogram")
    coupon_ids = list(
        db.session.scalars(
            select(Coupon.id)
            .where(Coupon.owner_id == member_id, Coupon.state.in_(("available", "gifting")))
            .order_by(Coupon.id)
        )
    )
    for coupon_id in coupon_ids:
        gift = lock_pending_gift(coupon_id)  # the order every gift path locks in
        coupon = db.session.execute(
            select(Coupon)
            .where(Coupon.id == coupon_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if coupon.state not in ("available", "gifting"):
            continue
        transition(coupon, "void", "voided", actor, ref="member erased")
        if gift is not None:
            gift.state = "cancelled"
            gift.settled_at = utcnow()
    return len(coupon_ids)


def _forfeit_points(member_id: int, requested_by: str, actor: str | None) -> int:
    balance = balance_of(member_id)
    if balance != 0:
        post_entry(
            member_id,
            -balance,
            kind="adjust",
            idempotency_key=f"erasure:{member_id}",
            ref_type="erasure",
            ref_id=str(member_id),
            actor=(actor or requested_by)[:64],
            reason="personal data erased: balance forfeited",
            allow_negative=True,
        )
    return balance


def _erase_personal_data(member: Member, family: list[int]) -> None:
    db.session.execute(delete(MemberIdentity).where(MemberIdentity.member_id.in_(family)))
    db.session.execute(
        update(Member)
        .where(Member.id.in_(family))
        .values(phone=None, name=None, birthday=None, marketing_opt_out=True)
    )
    for model in (ClerkNote, MemberTagEvent, MemberTag, TagRuleApplication, ClerkAccessGrant):
        db.session.execute(delete(model).where(model.member_id.in_(family)))
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.member_id.in_(family)).values(payload={})
    )
    db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.member_id.in_(family),
            OutboxMessage.status.in_(("pending", "failed", "sending")),
        )
        .values(status="skipped", last_error="member erased")
    )
    for record in db.session.scalars(
        select(MemberMerge).where(
            (MemberMerge.survivor_id.in_(family)) | (MemberMerge.absorbed_id.in_(family))
        )
    ):
        moved = dict(record.moved or {})
        moved["identities"] = [[kind, "", ""] for kind, *_ in moved.get("identities", [])]
        record.moved = moved
    db.session.flush()
    db.session.refresh(member)
    member.status = ERASED
    db.session.flush()


# --- export -----------------------------------------------------------------------------------
def export_member(member_id: int) -> dict[str, Any]:
    """Everything held about the live member behind ``member_id``, as JSON-ready data."""
    member = resolve_member(member_id)
    family = merged_family(member.id)
    identities = db.session.scalars(
        select(MemberIdentity).where(MemberIdentity.member_id == member.id)
    )
    entries = db.session.scalars(
        select(PointsEntry).where(PointsEntry.member_id == member.id).order_by(PointsEntry.id)
    )
    purchases = db.session.scalars(
        select(Purchase).where(Purchase.member_id == member.id).order_by(Purchase.id)
    )
    coupons = db.session.scalars(
        select(Coupon).where(Coupon.owner_id == member.id).order_by(Coupon.id)
    )
    tags = db.session.scalars(select(MemberTag).where(MemberTag.member_id == member.id))
    notes = db.session.scalars(
        select(ClerkNote).where(ClerkNote.member_id == member.id).order_by(ClerkNote.id)
    )
    sales = db.session.scalars(
        select(PosSale).where(PosSale.member_id.in_(family)).order_by(PosSale.id)
    )
    messages = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.member_id.in_(family)).order_by(OutboxMessage.id)
    )
    attribution = db.session.get(MemberAttribution, member.id)
    return {
        "member": {
            "id": member.id,
            "status": member.status,
            "phone": member.phone,
            "name": member.name,
            "birthday": member.birthday.isoformat() if member.birthday else None,
            "source": member.source,
            "join_store_id": member.join_store_id,
            "marketing_opt_out": member.marketing_opt_out,
            "created_at": _iso(member.created_at),
            "merged_from": [i for i in family if i != member.id],
        },
        "identities": [
            {
                "kind": i.kind,
                "app": i.app,
                "external_id": i.external_id,
                "since": _iso(i.created_at),
            }
            for i in identities
        ],
        "consents": [
            {"policy_version": c.policy_version, "channel": c.channel, "at": _iso(c.granted_at)}
            for c in consents_of(member.id)
        ],
        "points": {
            "balance": balance_of(member.id),
            "ledger": [
                {
                    "points": e.points,
                    "balance_after": e.balance_after,
                    "kind": e.kind,
                    "reason": e.reason,
                    "store_id": e.store_id,
                    "at": _iso(e.created_at),
                }
                for e in entries
            ],
        },
        "purchases": [
            {
                "source": p.source,
                "store_id": p.store_id,
                "paid_fen": p.paid_fen,
                "refunded_fen": p.refunded_fen,
                "points_earned": p.points_earned,
                "occurred_at": _iso(p.occurred_at),
            }
            for p in purchases
        ],
        "till_sales": [
            {
                "store_id": s.store_id,
                "sale_id": s.sale_id,
                "total_fen": s.total_fen,
                "paid_fen": s.paid_fen,
                "occurred_at": _iso(s.occurred_at),
            }
            for s in sales
        ],
        "coupons": [
            {
                "code": c.code,
                "name": c.template.name,
                "state": c.state,
                "issued_at": _iso(c.issued_at),
                "expires_at": _iso(c.expires_at),
            }
            for c in coupons
        ],
        "tags": [{"name": t.tag.name, "since": _iso(t.created_at)} for t in tags],
        "clerk_notes": [
            {"text": n.text, "store_id": n.store_id, "at": _iso(n.created_at)} for n in notes
        ],
        "attribution": (
            {"store_id": attribution.store_id, "at": _iso(attribution.attributed_at)}
            if attribution
            else None
        ),
        "messages": [
            {"kind": m.kind, "channel": m.channel, "status": m.status, "at": _iso(m.created_at)}
            for m in messages
        ],
        "exported_at": _iso(utcnow()),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
