"""Binding a verified phone number to a member, merging when someone else already holds it.

The member that already holds the phone survives (deterministic: the phone is the person's key);
the member binding it is absorbed. Both rows are locked in id order, then the facts are checked
again: when a racing request changed them meanwhile, the transaction is retried from the top.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.common.phone import mask_phone, normalize_phone
from app.db import is_retryable, unit_of_work
from app.errors import Conflict
from app.extensions import db
from app.members.consent import record_consent
from app.members.merge import lock_members, merge_members
from app.members.models import Member
from app.members.services import add_identity, find_by_identity, resolve_member

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


class _StateChanged(Exception):
    """A racing request changed the members between reading and locking: start over."""


@dataclass(frozen=True)
class BindResult:
    member_id: int  # the live member now holding the phone
    merged_from: int | None  # the absorbed member, when a merge happened


def bind_phone(member_id: int, phone: str, *, channel: str) -> BindResult:
    """Give the (live) member behind ``member_id`` a verified phone. Owns its transaction."""
    normalized = normalize_phone(phone)
    for _ in range(MAX_ATTEMPTS):
        try:
            with unit_of_work():
                return _bind_once(member_id, normalized, channel)
        except (_StateChanged, IntegrityError):
            db.session.rollback()
            continue
        except DBAPIError as exc:
            if is_retryable(exc):
                db.session.rollback()
                continue
            raise
    raise Conflict("phone binding kept racing; try again", code="BIND_PHONE_BUSY")


def _bind_once(member_id: int, phone: str, channel: str) -> BindResult:
    member = resolve_member(member_id)
    holder = _phone_holder(phone)
    if holder is not None and holder.id == member.id:
        return BindResult(member.id, None)
    if member.phone and member.phone != phone:
        raise Conflict("this member already has another phone", code="PHONE_ALREADY_BOUND")
    locked = lock_members(member.id, *([holder.id] if holder else []))
    me = locked.get(member.id)
    if me is None or me.status != "active":
        raise _StateChanged
    if me.phone and me.phone != phone:  # bound meanwhile by a racing request
        raise Conflict("this member already has another phone", code="PHONE_ALREADY_BOUND")
    record_consent(me.id, channel)  # the person agreed in the mini-program before binding
    if holder is None:
        _give_phone(me, phone)
        log.info("member %s bound phone %s", me.id, mask_phone(phone))
        return BindResult(me.id, None)
    survivor = locked.get(holder.id)
    current = _phone_holder(phone)
    if survivor is None or survivor.status != "active" or current is None:
        raise _StateChanged
    if current.id != survivor.id:
        raise _StateChanged
    merge_members(me, survivor, reason=f"phone_binding:{channel}")
    if find_by_identity("phone", phone) is None:
        add_identity(survivor, "phone", phone)
    return BindResult(survivor.id, me.id)


def _phone_holder(phone: str) -> Member | None:
    """The live member holding ``phone``, as an identity or (older rows) only in the column."""
    holder = find_by_identity("phone", phone)
    if holder is not None:
        return holder
    member_id = db.session.execute(select(Member.id).where(Member.phone == phone)).scalar()
    return resolve_member(member_id) if member_id is not None else None


def _give_phone(member: Member, phone: str) -> None:
    member.phone = phone
    add_identity(member, "phone", phone)
    db.session.flush()  # a racing binder of the same phone fails here, and retries as a merge
