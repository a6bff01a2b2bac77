"""Earn multipliers configured as rules: double points in a store between two dates, member day.

A purchase earns ``points_for_paid(paid_fen, percent)`` with the highest ``percent`` among the
active rules matching its store and time (100 when none does). The purchase keeps the percent,
so its refunds compute what it keeps with the same multiplier.
"""

from __future__ import annotations

import functools
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Select, bindparam, or_, select

from app.common.clock import ensure_aware, utcnow
from app.db import transaction
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.points.models import MultiplierRule
from app.stores.models import Store

BASE_PERCENT = 100
MAX_PERCENT = 1000


@functools.cache
def _rules_stmt(in_a_store: bool) -> Select:
    """The rules that may match purchases between two times: columns only, built once (this
    runs for every purchase)."""
    store_match = MultiplierRule.store_id.is_(None)
    if in_a_store:
        store_match = or_(store_match, MultiplierRule.store_id == bindparam("store_id"))
    return select(
        MultiplierRule.percent,
        MultiplierRule.starts_at,
        MultiplierRule.ends_at,
        MultiplierRule.day_of_month,
    ).where(
        MultiplierRule.active.is_(True),
        MultiplierRule.starts_at <= bindparam("latest"),
        MultiplierRule.ends_at > bindparam("earliest"),
        store_match,
    )


def multiplier_for(store_id: int | None, occurred_at: datetime) -> int:
    """The earn percent in force for a purchase in ``store_id`` at ``occurred_at``."""
    return multipliers_for(store_id, [occurred_at])[0]


def multipliers_for(store_id: int | None, times: list[datetime]) -> list[int]:
    """``multiplier_for`` at each of several times in one store, with one query."""
    if not times:
        return []
    at = [ensure_aware(t) for t in times]
    rules = db.session.execute(
        _rules_stmt(store_id is not None),
        {"store_id": store_id, "latest": max(at), "earliest": min(at)},
    ).all()
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    percents = []
    for moment in at:
        local_day = moment.astimezone(zone).day
        matching = [
            r.percent
            for r in rules
            if ensure_aware(r.starts_at) <= moment < ensure_aware(r.ends_at)
            and r.day_of_month in (None, local_day)
        ]
        percents.append(max([BASE_PERCENT, *matching]))
    return percents


def create_rule(
    *,
    name: str,
    percent: int,
    starts_at: datetime,
    ends_at: datetime,
    store_code: str | None = None,
    day_of_month: int | None = None,
    actor: str | None = None,
) -> MultiplierRule:
    """Store a new rule (its own transaction). ``store_code`` None: every store."""
    if not BASE_PERCENT < percent <= MAX_PERCENT:
        raise ValidationFailed(
            f"percent must be above {BASE_PERCENT} and at most {MAX_PERCENT}",
            code="INVALID_MULTIPLIER",
            details={"percent": ["out of range"]},
        )
    if ensure_aware(ends_at) <= ensure_aware(starts_at):
        raise ValidationFailed(
            "ends_at must be after starts_at",
            code="INVALID_PERIOD",
            details={"ends_at": ["must be after starts_at"]},
        )

    def attempt() -> MultiplierRule:
        store_id = None
        if store_code is not None:
            store_id = db.session.scalars(
                select(Store.id).where(Store.code == store_code)
            ).one_or_none()
            if store_id is None:
                raise NotFound("store not found", code="STORE_NOT_FOUND")
        rule = MultiplierRule(
            name=name,
            percent=percent,
            store_id=store_id,
            starts_at=starts_at,
            ends_at=ends_at,
            day_of_month=day_of_month,
            active=True,
            created_by=actor,
            created_at=utcnow(),
        )
        db.session.add(rule)
        db.session.flush()
        return rule

    return transaction(attempt)


def list_rules() -> list[MultiplierRule]:
    return list(db.session.scalars(select(MultiplierRule).order_by(MultiplierRule.id.desc())))
