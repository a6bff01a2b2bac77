"""Birthday care: each morning (Asia/Shanghai) today's birthdays get the birthday coupon.

Members on a tier with a birthday gift also get that tier's coupon (``tier_birthday_gift``).
Exactly once a year per person: the coupon's issue key is ``birthday:<year>:<member id>`` and
the message's dedupe key the same, so a rerun (or two schedulers) changes nothing. Members born
on 29 February are celebrated on 28 February in other years.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import and_, extract, or_, select

from app.common.clock import SHANGHAI, utcnow
from app.errors import DomainError
from app.extensions import db
from app.jobs.chunked import ChunkedJob, Step, register, run_chunked
from app.members.models import Member
from app.outbox.services import enqueue_message

log = logging.getLogger(__name__)
BATCH = 200


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def birthdays_today_filter(today: date) -> Any:
    same_day = and_(
        extract("month", Member.birthday) == today.month,
        extract("day", Member.birthday) == today.day,
    )
    if today.month == 2 and today.day == 28 and not _is_leap(today.year):
        leap_born = and_(
            extract("month", Member.birthday) == 2, extract("day", Member.birthday) == 29
        )
        return or_(same_day, leap_born)
    return same_day


def _birthday_ids(today: date, after: int, limit: int) -> list[int]:
    return list(
        db.session.scalars(
            select(Member.id)
            .where(
                Member.status == "active",
                Member.birthday.is_not(None),
                Member.id > after,
                birthdays_today_filter(today),
            )
            .order_by(Member.id)
            .limit(limit)
        )
    )


def _local_day(now: datetime) -> date:
    return now.astimezone(SHANGHAI).date()


def _celebrate_range(now: datetime, lo: int, hi: int) -> dict[str, int]:
    today = _local_day(now)
    template_id = current_app.config.get("BIRTHDAY_COUPON_TEMPLATE_ID")
    counts = {"members": 0}
    for member_id in _birthday_ids(today, lo - 1, hi - lo + 1):
        if member_id > hi:
            break
        outcome = _celebrate_in_transaction(member_id, today.year, template_id)
        counts["members"] += 1
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


BIRTHDAYS = register(
    ChunkedJob(
        "members.birthdays",
        (
            Step(
                "celebrate",
                _celebrate_range,
                keys=lambda now, after, limit: _birthday_ids(_local_day(now), after, limit),
            ),
        ),
        chunk_size=BATCH,
        counters=("members", "coupons", "refused"),
    )
)


def send_birthday_coupons(
    now: datetime | None = None, run_key: str | None = None
) -> dict[str, Any]:
    """Today's birthdays (Asia/Shanghai) of ``now``: a chunked job (``app.jobs.chunked``)."""
    return run_chunked(BIRTHDAYS, now=now or utcnow(), run_key=run_key)


def _celebrate_in_transaction(member_id: int, year: int, template_id: int | None) -> str:
    from app.coupons.issuance import issue_once
    from app.tiers.services import tier_birthday_gift

    key = f"birthday:{year}:{member_id}"
    payload: dict[str, Any] = {"year": year}
    outcome = "greeted"
    if template_id:
        try:
            with db.session.begin_nested():
                coupon = issue_once(int(template_id), member_id, source="birthday", issue_key=key)
            payload["code"] = coupon.code
            outcome = "coupons"
        except DomainError as exc:  # paused template, out of stock: greet without one
            log.warning("birthday coupon for member %s refused: %s", member_id, exc.code)
            outcome = "refused"
    payload.update(tier_birthday_gift(member_id, year))
    enqueue_message(member_id, "birthday", payload, dedupe_key=key)
    return outcome
