"""Assertions on the real effects of payment notifications."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.members.models import Member, MemberIdentity
from app.points.models import PointsEntry, Purchase
from app.points.services import audit_differences


def counts() -> dict[str, int]:
    db.session.expire_all()
    return {
        "members": db.session.scalar(select(func.count()).select_from(Member)) or 0,
        "identities": db.session.scalar(select(func.count()).select_from(MemberIdentity)) or 0,
        "purchases": db.session.scalar(select(func.count()).select_from(Purchase)) or 0,
        "entries": db.session.scalar(select(func.count()).select_from(PointsEntry)) or 0,
    }


def only_member() -> Member:
    db.session.expire_all()
    members = list(db.session.scalars(select(Member)))
    assert len(members) == 1, members
    return members[0]


def ledger_is_consistent() -> bool:
    return audit_differences() == []
