"""Identities: each on a live member, one phone per member, merge chains ending at a live one."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select

from app.audit.types import Difference
from app.extensions import db
from app.members.models import Member, MemberIdentity
from app.members.services import MAX_MERGE_HOPS
from app.points.models import PointsAccount


def identity_differences() -> list[Difference]:
    return [
        *_identities_on_merged(),
        *_phones_mismatch(),
        *_merge_status(),
        *_merge_chains(),
        *_points_left_on_merged(),
    ]


def _d(check: str, member_id: int, detail: str) -> Difference:
    return Difference(check, f"member {member_id}", detail)


def _identities_on_merged() -> list[Difference]:
    rows = db.session.execute(
        select(MemberIdentity.member_id, MemberIdentity.kind, MemberIdentity.id)
        .join(Member, Member.id == MemberIdentity.member_id)
        .where(Member.status != "active")
    ).all()
    return [
        _d("identity_on_merged_member", mid, f"{kind} identity {iid}") for mid, kind, iid in rows
    ]


def _phones_mismatch() -> list[Difference]:
    """At most one phone identity per member, equal to ``members.phone``; merged hold none."""
    multi = db.session.execute(
        select(MemberIdentity.member_id, func.count())
        .where(MemberIdentity.kind == "phone")
        .group_by(MemberIdentity.member_id)
        .having(func.count() > 1)
    ).all()
    found = [_d("member_with_several_phones", mid, f"{n} phone identities") for mid, n in multi]
    rows = db.session.execute(
        select(Member.id, Member.phone, MemberIdentity.external_id)
        .outerjoin(
            MemberIdentity,
            and_(MemberIdentity.member_id == Member.id, MemberIdentity.kind == "phone"),
        )
        .where(
            Member.status == "active",
            or_(
                and_(Member.phone.is_not(None), MemberIdentity.id.is_(None)),
                MemberIdentity.external_id != func.coalesce(Member.phone, ""),
            ),
        )
    ).all()
    found += [
        _d("member_phone_not_identity", mid, "phone column and phone identity differ")
        for mid, _phone, _identity in rows
    ]
    merged = db.session.execute(
        select(Member.id).where(Member.status != "active", Member.phone.is_not(None))
    ).scalars()
    found += [_d("merged_member_keeps_phone", mid, "phone still set") for mid in merged]
    return found


def _merge_status() -> list[Difference]:
    rows = db.session.execute(
        select(Member.id, Member.status, Member.merged_into_id).where(
            or_(
                Member.status.not_in(("active", "merged", "erased")),
                and_(Member.status == "merged", Member.merged_into_id.is_(None)),
                and_(Member.status.in_(("active", "erased")), Member.merged_into_id.is_not(None)),
            )
        )
    ).all()
    return [
        _d("member_merge_status", mid, f"status {status!r}, merged_into {into}")
        for mid, status, into in rows
    ]


def _merge_chains() -> list[Difference]:
    """Every ``merged_into`` chain reaches a live member (active, or erased with its whole
    family) within the resolver's hop limit."""
    links = dict(
        db.session.execute(
            select(Member.id, Member.merged_into_id).where(Member.merged_into_id.is_not(None))
        ).all()
    )
    targets = set(links.values()) - set(links)
    statuses = dict(
        db.session.execute(select(Member.id, Member.status).where(Member.id.in_(targets))).all()
    )
    found = []
    for start in links:
        current, hops = start, 0
        while current in links and hops <= MAX_MERGE_HOPS:
            current, hops = links[current], hops + 1
        if current in links:
            found.append(_d("merge_chain_too_long", start, f"no end after {hops} hops"))
        elif statuses.get(current) not in ("active", "erased"):
            end = f"ends at member {current} ({statuses.get(current)})"
            found.append(_d("merge_chain_dead_end", start, end))
    return found


def _points_left_on_merged() -> list[Difference]:
    rows = db.session.execute(
        select(PointsAccount.member_id, PointsAccount.balance)
        .join(Member, Member.id == PointsAccount.member_id)
        .where(Member.status != "active", PointsAccount.balance != 0)
    ).all()
    return [_d("points_on_merged_member", mid, f"balance {b}") for mid, b in rows]
