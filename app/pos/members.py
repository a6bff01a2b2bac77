"""The member a till names by phone at identification (registering it on request)."""

from __future__ import annotations

from app.common.phone import normalize_phone
from app.members.models import Member
from app.members.payers import Payer, enrol
from app.members.services import find_by_phone, get_member


def member_for_phone(phone: str, *, store_id: int, register: bool) -> tuple[Member | None, bool]:
    """``(member, created)``; with ``register`` an unknown phone is enrolled (``enrol``)."""
    member = find_by_phone(phone)
    if member is not None or not register:
        return member, False
    identity = ("phone", "", normalize_phone(phone))
    [member_id] = enrol([Payer((identity,), "pos", store_id)])
    return get_member(member_id), True
