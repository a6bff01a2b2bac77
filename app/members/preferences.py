"""What members decide for themselves: their birthday (once) and marketing messages."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.db import unit_of_work
from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.members.models import Member
from app.members.services import resolve_member


def set_birthday(member_id: int, birthday: date) -> Member:
    """A member may set a birthday once; changing it later is refused (it drives a coupon)."""
    if birthday > date.today() or birthday.year < 1900:
        raise ValidationFailed(
            "birthday is not a plausible date",
            code="INVALID_BIRTHDAY",
            details={"birthday": ["not a plausible date"]},
        )
    with unit_of_work():
        live_id = resolve_member(member_id).id
        member = db.session.execute(
            select(Member).where(Member.id == live_id).with_for_update()
        ).scalar_one()
        if member.birthday is not None and member.birthday != birthday:
            raise Conflict("birthday can be set only once", code="BIRTHDAY_ALREADY_SET")
        member.birthday = birthday
    return member


def set_marketing_opt_out(member_id: int, opt_out: bool) -> Member:
    """Opted-out members get only transactional messages (points, coupons they hold)."""
    with unit_of_work():
        member = resolve_member(member_id)
        member.marketing_opt_out = opt_out
    return member
