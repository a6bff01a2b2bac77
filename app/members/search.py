"""HQ member search: partial phone (HQ roles only), tag, store, join date; paginated; scoped.

Extension point: a feature adds a filter with :func:`register_member_filter` (for example
``tier`` or ``lifecycle``), from its ``register_hooks()``-style setup. The search endpoint then
accepts that query parameter; an unregistered parameter answers 422 ``UNKNOWN_FILTER``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, exists, or_, select

from app.common.pagination import paginate
from app.errors import ValidationFailed
from app.members.models import Member
from app.operators import authz
from app.points.models import Purchase
from app.stores.services import get_store_by_code
from app.tags.models import MemberTag

MemberFilter = Callable[[Select, str], Select]
_FILTERS: dict[str, tuple[MemberFilter, str]] = {}


def register_member_filter(name: str, apply: MemberFilter, description: str = "") -> None:
    """``apply(stmt, raw_value)`` narrows ``select(Member)``; bad input raises ValidationFailed."""
    _FILTERS[name] = (apply, description)


def member_filters() -> dict[str, str]:
    """Every filter name and its description (for the API description and the console)."""
    return {name: description for name, (_, description) in _FILTERS.items()}


def _phone_contains(stmt: Select, value: str) -> Select:
    authz.require_phone_search()
    digits = value.strip().lstrip("+")
    if digits.startswith("86") and len(digits) > 11:
        digits = digits[2:]
    if not digits.isdigit() or not 4 <= len(digits) <= 11:
        raise ValidationFailed(
            "phone_contains takes 4 to 11 digits",
            code="INVALID_PHONE_FRAGMENT",
            details={"phone_contains": ["4 to 11 digits"]},
        )
    return stmt.where(Member.phone.contains(digits, autoescape=True))


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise ValidationFailed(
            f"{name} must be an integer", details={name: ["not an integer"]}
        ) from exc


def _tag(stmt: Select, value: str) -> Select:
    tag_id = _int("tag_id", value)
    return stmt.where(exists().where(MemberTag.member_id == Member.id, MemberTag.tag_id == tag_id))


def _store(stmt: Select, value: str) -> Select:
    store = get_store_by_code(value)
    authz.require_store(store.id, code="STORE_NOT_FOUND")
    bought = exists().where(Purchase.member_id == Member.id, Purchase.store_id == store.id)
    return stmt.where(or_(Member.join_store_id == store.id, bought))


def _day(name: str, value: str) -> datetime:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise ValidationFailed(
            f"{name} is a date like 2026-01-31", details={name: ["YYYY-MM-DD"]}
        ) from exc
    return datetime.combine(day, time(), tzinfo=UTC)


def _joined_from(stmt: Select, value: str) -> Select:
    return stmt.where(Member.created_at >= _day("joined_from", value))


def _joined_to(stmt: Select, value: str) -> Select:
    return stmt.where(Member.created_at < _day("joined_to", value) + timedelta(days=1))


register_member_filter("phone_contains", _phone_contains, "4 to 11 digits of the phone (HQ roles)")
register_member_filter("tag_id", _tag, "carries this tag now")
register_member_filter("store", _store, "joined at or bought at this store (code)")
register_member_filter("joined_from", _joined_from, "joined on or after this day (UTC)")
register_member_filter("joined_to", _joined_to, "joined on or before this day (UTC)")


def search_members(
    criteria: dict[str, Any], *, limit: int, cursor: str | None
) -> tuple[list[Member], str | None]:
    """Live members (merged ones left out) matching every criterion, newest first, within the
    principal's scope."""
    unknown = sorted(set(criteria) - set(_FILTERS))
    if unknown:
        raise ValidationFailed(
            f"unknown filter: {', '.join(unknown)}",
            code="UNKNOWN_FILTER",
            details={name: [f"one of {', '.join(sorted(_FILTERS))}"] for name in unknown},
        )
    stmt = select(Member).where(Member.merged_into_id.is_(None), authz.member_clause(Member.id))
    for name, value in criteria.items():
        if value not in (None, ""):
            stmt = _FILTERS[name][0](stmt, str(value))
    return paginate(stmt, Member.id, limit=limit, cursor=cursor)
