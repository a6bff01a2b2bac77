"""The member a till names by phone at identification (registering it on request)."""

from __future__ import annotations

from app.common.phone import normalize_phone
from app.members.payers import Payer, enrolment
from app.members.services import MemberRef, find_ref_by_identity
from app.points.services import balance_of


def member_for_phone(phone: str, *, store_id: int, register: bool) -> tuple[MemberRef | None, bool]:
    """``(member, created)``; with ``register`` an unknown phone is enrolled (``enrol``)."""
    normalized = normalize_phone(phone)
    member = find_ref_by_identity("phone", normalized)
    if member is not None or not register:
        return member, False
    enrolled = enrolment([Payer((("phone", "", normalized),), "pos", store_id)])
    [member_id] = enrolled.member_ids
    return MemberRef(member_id, normalized, balance_of(member_id)), member_id in enrolled.created
