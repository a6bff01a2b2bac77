"""Merging two members into one: identities, points, purchases and every feature's data.

The survivor keeps everything; the absorbed member is marked ``merged`` with ``merged_into``
set, so its old ids and tokens resolve to the survivor. Feature packages that keep per-member
data (coupons, clerk tags and notes, POS sales…) register a step with
:func:`register_merge_step`; each step runs inside the merge transaction, after both members
are locked, as ``step(absorbed_id, survivor_id)``.

Callers lock both members first (:func:`lock_members`, in id order) and own the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select, update

from app.errors import Conflict
from app.extensions import db
from app.members.models import Member, MemberIdentity, MemberMerge
from app.points.models import PointsHold, Purchase
from app.points.services import transfer_on_merge

log = logging.getLogger(__name__)

MergeStep = Callable[[int, int], None]
MERGE_STEPS: list[MergeStep] = []


def register_merge_step(step: MergeStep) -> MergeStep:
    """Run ``step(absorbed_id, survivor_id)`` in every merge transaction. Idempotent."""
    if step not in MERGE_STEPS:
        MERGE_STEPS.append(step)
    return step


def lock_members(*member_ids: int) -> dict[int, Member]:
    """Lock member rows in id order (``FOR UPDATE``; SQLite serialises writers) and load them."""
    ids = sorted(set(member_ids))
    rows = db.session.execute(
        select(Member).where(Member.id.in_(ids)).order_by(Member.id).with_for_update()
    ).scalars()
    found = {m.id: m for m in rows}
    for member in found.values():
        db.session.refresh(member)
    return found


def merge_members(absorbed: Member, survivor: Member, *, reason: str) -> MemberMerge:
    """Fold ``absorbed`` into ``survivor``. Both must be locked and live; repeats are refused."""
    if absorbed.id == survivor.id:
        raise Conflict("a member cannot be merged into itself", code="MERGE_SAME_MEMBER")
    if absorbed.status == "merged" or survivor.status == "merged":
        raise Conflict("member already merged", code="MEMBER_ALREADY_MERGED")
    if absorbed.phone and survivor.phone and absorbed.phone != survivor.phone:
        raise Conflict("both members hold different phones", code="MERGE_PHONE_CONFLICT")
    merge_key = f"{absorbed.id}-into-{survivor.id}"
    identities = list(
        db.session.execute(
            select(MemberIdentity).where(MemberIdentity.member_id == absorbed.id)
        ).scalars()
    )
    moved_identities = [[i.kind, i.app, i.external_id] for i in identities]
    db.session.execute(
        update(MemberIdentity)
        .where(MemberIdentity.member_id == absorbed.id)
        .values(member_id=survivor.id)
    )
    points = transfer_on_merge(absorbed.id, survivor.id, merge_key=merge_key)
    purchases = db.session.execute(
        update(Purchase).where(Purchase.member_id == absorbed.id).values(member_id=survivor.id)
    ).rowcount
    # A pending POS hold's release must credit the member who now holds the balance.
    holds = db.session.execute(
        update(PointsHold)
        .where(PointsHold.member_id == absorbed.id, PointsHold.state == "held")
        .values(member_id=survivor.id)
    ).rowcount
    # Members merged earlier into the absorbed one now point straight at the survivor.
    db.session.execute(
        update(Member)
        .where(Member.merged_into_id == absorbed.id)
        .values(merged_into_id=survivor.id)
    )
    phone = absorbed.phone
    absorbed.phone = None
    absorbed.status = "merged"
    absorbed.merged_into_id = survivor.id
    db.session.flush()
    if phone and not survivor.phone:
        survivor.phone = phone
    survivor.name = survivor.name or absorbed.name
    survivor.birthday = survivor.birthday or absorbed.birthday
    survivor.marketing_opt_out = survivor.marketing_opt_out or absorbed.marketing_opt_out
    for step in MERGE_STEPS:
        step(absorbed.id, survivor.id)
    record = MemberMerge(
        survivor_id=survivor.id,
        absorbed_id=absorbed.id,
        reason=reason,
        moved={
            "identities": moved_identities,
            "points": points,
            "purchases": purchases,
            "holds": holds,
            "steps": [getattr(s, "__qualname__", repr(s)) for s in MERGE_STEPS],
        },
    )
    db.session.add(record)
    db.session.flush()
    log.info(
        "member %s merged into %s (%s): %d identities, %d points, %d purchases",
        absorbed.id,
        survivor.id,
        reason,
        len(moved_identities),
        points,
        purchases,
    )
    return record
