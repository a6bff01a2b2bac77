"""Issuing coupons: one coupon from a template (shared by every door), and HQ batches.

Issuance from one template is serialised by a row lock on the template, so total stock and
per-member limits hold under concurrency.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.common.clock import utcnow
from app.coupons.errors import refused
from app.coupons.models import Coupon, CouponTemplate
from app.coupons.state import Actor, transition
from app.coupons.templates import check_issuable, lock_template, validity_for
from app.db import transaction
from app.errors import NotFound
from app.extensions import db
from app.members.models import Member
from app.members.services import resolve_member

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
CODE_LENGTH = 16  # 31**16 ≈ 2**79: unguessable


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _issued_counts(template: CouponTemplate, member_ids: list[int]) -> dict[int, int]:
    """How many coupons of the template each member was issued (one query)."""
    rows = db.session.execute(
        select(Coupon.issued_to_id, func.count())
        .where(Coupon.template_id == template.id, Coupon.issued_to_id.in_(set(member_ids)))
        .group_by(Coupon.issued_to_id)
    ).all()
    return {int(member_id): int(n) for member_id, n in rows}


def _limit_reached(template: CouponTemplate, member_id: int) -> bool:
    if template.per_member_limit is None:
        return False
    return _issued_counts(template, [member_id]).get(member_id, 0) >= template.per_member_limit


def _stock_left(template: CouponTemplate) -> int | None:
    if template.total_stock is None:
        return None
    return template.total_stock - template.issued_count


def issue_one(
    template: CouponTemplate,
    member_id: int,
    *,
    source: str,
    actor: Actor,
    issue_key: str | None = None,
    now: datetime | None = None,
    limit_checked: bool = False,
) -> Coupon:
    """One coupon from a template the caller has locked; refuses over stock or limit
    (``limit_checked``: the caller already counted the member's coupons of this template)."""
    now = now or utcnow()
    check_issuable(template, now)
    left = _stock_left(template)
    if left is not None and left <= 0:
        raise refused("OUT_OF_STOCK", template_id=template.id)
    if not limit_checked and _limit_reached(template, member_id):
        raise refused("COUPON_LIMIT_REACHED", template_id=template.id, member_id=member_id)
    valid_from, expires_at = validity_for(template, now)
    coupon = Coupon(
        code=new_code(),
        template_id=template.id,
        owner_id=member_id,
        issued_to_id=member_id,
        source=source,
        issue_key=issue_key,
        gift_count=0,
        issued_at=now,
        valid_from=valid_from,
        expires_at=expires_at,
    )
    transition(coupon, "available", "issued", actor, owner_id=member_id, ref=issue_key)
    template.issued_count += 1
    return coupon


@dataclass(frozen=True)
class IssueResult:
    """What happened to one requested member id of a bulk issue, in request order."""

    member_id: int
    coupon: Coupon | None
    code: str | None  # why it was skipped: MEMBER_NOT_FOUND | COUPON_LIMIT_REACHED


def issue_to_members(
    template_id: int, member_ids: list[int], *, admin_name: str
) -> tuple[list[Coupon], list[dict]]:
    """HQ gives one coupon to each listed member (merged ids count as their survivor): the
    issued coupons, and the skipped ids with their reason (see :func:`issue_batch`)."""
    results = issue_batch(template_id, member_ids, admin_name=admin_name)
    issued = [r.coupon for r in results if r.coupon is not None]
    skipped = [{"member_id": r.member_id, "code": r.code} for r in results if r.coupon is None]
    return issued, skipped


def issue_batch(template_id: int, member_ids: list[int], *, admin_name: str) -> list[IssueResult]:
    """One result per requested id, in order.

    All or nothing on stock: if the stock cannot cover the batch, nothing is issued
    (``OUT_OF_STOCK``). An unknown member id (``MEMBER_NOT_FOUND``) or a member at the
    per-member limit (``COUPON_LIMIT_REACHED``) is skipped with its reason; the others are issued.
    """

    def attempt() -> list[IssueResult]:
        resolved: list[tuple[int, Member | None]] = []
        for member_id in member_ids:
            try:
                resolved.append((member_id, resolve_member(member_id)))
            except NotFound:
                resolved.append((member_id, None))
        found = [m for _, m in resolved if m is not None]
        template = lock_template(template_id)
        check_issuable(template, utcnow())
        left = _stock_left(template)
        if left is not None and left < len(found):
            raise refused("OUT_OF_STOCK", template_id=template.id, stock_left=left)
        actor = Actor(f"admin:{admin_name}", "admin")
        limit = template.per_member_limit
        counts = _issued_counts(template, [m.id for m in found]) if limit else {}
        results = []
        for requested, member in resolved:
            if member is None:
                results.append(IssueResult(requested, None, "MEMBER_NOT_FOUND"))
                continue
            if limit is not None and counts.get(member.id, 0) >= limit:
                results.append(IssueResult(requested, None, "COUPON_LIMIT_REACHED"))
                continue
            counts[member.id] = counts.get(member.id, 0) + 1
            coupon = issue_one(template, member.id, source="admin", actor=actor, limit_checked=True)
            results.append(IssueResult(requested, coupon, None))
        return results

    return transaction(attempt)


def issue_once(
    template_id: int, member_id: int, *, source: str, issue_key: str, actor_name: str = "system"
) -> Coupon:
    """One coupon per ``issue_key`` (e.g. ``birthday:2026:42``), inside the caller's transaction.

    For jobs such as birthday care: a repeat returns the coupon issued the first time. Refusals
    (paused, ended, out of stock, limit) raise before anything is written.
    """
    member_id = resolve_member(member_id).id
    template = lock_template(template_id)
    earlier = db.session.execute(
        select(Coupon).where(Coupon.issue_key == issue_key)
    ).scalar_one_or_none()
    if earlier is not None:
        return earlier
    actor = Actor(actor_name, "system")
    return issue_one(template, member_id, source=source, actor=actor, issue_key=issue_key)
