"""Nurture journeys: a trigger, then timed steps, each with conditions, once per member and step.

Triggers: ``joined``, ``first_purchase``, ``lifecycle:<stage>`` (a stage change). A member
enters a journey in the transaction of the event that triggers it (one enrollment per
journey, member and triggering event). The scheduler's ``intel.journeys`` job runs each step
that is due (``day`` days after the trigger): its conditions are checked then, and the step is
recorded ``done`` or ``skipped`` under a unique (enrollment, step) key in the same transaction
as the action, whose own key is ``journey:<id>:enrollment:<id>:step:<n>``.

Conditions: ``no_repurchase`` (no purchase since the trigger), ``opted_in`` (the member has not
opted out of marketing; every step checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select

from app.common.clock import utcnow
from app.common.upsert import insert_ignore
from app.db import forget, per_transaction, unit_of_work
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.intel.actions import act, validate_action
from app.intel.models import STAGES, Journey, JourneyEnrollment, JourneyStepRun, MemberStats
from app.members.models import Member

TRIGGERS = ("joined", "first_purchase", *(f"lifecycle:{s}" for s in STAGES))
CONDITIONS = ("no_repurchase", "opted_in")
CHUNK = 500


def templates(coupon_template_id: int) -> dict[str, dict[str, Any]]:
    """The two journeys brands run, ready to create with the brand's coupon template."""
    coupon = {"issue_coupon": coupon_template_id}
    return {
        "new_customer": {
            "name": "新客培育 day 0/7/20/30",
            "trigger": "first_purchase",
            "steps": [
                {"day": 0, "action": {"message": "nurture", "payload": {"step": "thanks"}}},
                {"day": 7, "action": {"message": "nurture", "payload": {"step": "care"}}},
                {"day": 20, "action": coupon, "conditions": ["no_repurchase"]},
                {"day": 30, "action": coupon, "conditions": ["no_repurchase"]},
            ],
        },
        "honeymoon_60": {
            "name": "60 天蜜月期",
            "trigger": "first_purchase",
            "steps": [
                {"day": 0, "action": {"message": "nurture", "payload": {"step": "welcome"}}},
                {"day": 3, "action": coupon},
                {
                    "day": 15,
                    "action": {"message": "nurture", "payload": {"step": "reminder"}},
                    "conditions": ["no_repurchase"],
                },
                {"day": 30, "action": coupon, "conditions": ["no_repurchase"]},
                {
                    "day": 45,
                    "action": {"message": "nurture", "payload": {"step": "last_call"}},
                    "conditions": ["no_repurchase"],
                },
                {"day": 60, "action": coupon, "conditions": ["no_repurchase"]},
            ],
        },
    }


def _validate_steps(steps: Any) -> list[dict]:
    if not isinstance(steps, list) or not 1 <= len(steps) <= 20:
        raise ValidationFailed(
            "steps: 1 to 20 steps", code="INVALID_STEPS", details={"steps": ["1 to 20 steps"]}
        )
    clean = []
    for i, step in enumerate(steps):
        where = f"steps.{i}"
        day = step.get("day") if isinstance(step, dict) else None
        if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 3650:
            raise ValidationFailed(
                f"{where}.day: 0 to 3650", code="INVALID_STEPS", details={where: ["day"]}
            )
        conditions = step.get("conditions") or []
        if not isinstance(conditions, list) or any(c not in CONDITIONS for c in conditions):
            raise ValidationFailed(
                f"{where}.conditions: any of {', '.join(CONDITIONS)}",
                code="INVALID_STEPS",
                details={where: ["conditions"]},
            )
        clean.append(
            {
                "day": day,
                "action": validate_action(step.get("action"), field=f"{where}.action"),
                "conditions": sorted(set(conditions) | {"opted_in"}),
            }
        )
    if [s["day"] for s in clean] != sorted(s["day"] for s in clean):
        raise ValidationFailed(
            "steps must be in day order", code="INVALID_STEPS", details={"steps": ["day order"]}
        )
    return clean


def create_journey(
    *, name: str, trigger: str, steps: Any, template: str | None = None, active: bool = True
) -> Journey:
    if trigger not in TRIGGERS:
        raise ValidationFailed(
            f"trigger: one of {', '.join(TRIGGERS)}",
            code="INVALID_TRIGGER",
            details={"trigger": [f"one of {', '.join(TRIGGERS)}"]},
        )
    with unit_of_work():
        journey = Journey(
            name=name,
            trigger=trigger,
            steps=_validate_steps(steps),
            template=template,
            active=active,
        )
        db.session.add(journey)
        forget(JOURNEYS_KEY)
    return journey


def create_from_template(template: str, coupon_template_id: int) -> Journey:
    found = templates(coupon_template_id).get(template)
    if found is None:
        raise ValidationFailed(
            "template: new_customer or honeymoon_60",
            code="UNKNOWN_TEMPLATE",
            details={"template": ["new_customer or honeymoon_60"]},
        )
    return create_journey(template=template, **found)


def get_journey(journey_id: int) -> Journey:
    journey = db.session.get(Journey, journey_id)
    if journey is None:
        raise NotFound("journey not found", code="JOURNEY_NOT_FOUND")
    return journey


def set_active(journey_id: int, active: bool) -> Journey:
    with unit_of_work():
        journey = get_journey(journey_id)
        journey.active = active
        forget(JOURNEYS_KEY)
    return journey


def _active_journeys(trigger: str) -> list[int]:
    """Active journeys with this trigger, read once per transaction (every wave of a batch
    may enrol)."""

    def load() -> dict[str, list[int]]:
        by_trigger: dict[str, list[int]] = {}
        for journey_id, on in db.session.execute(
            select(Journey.id, Journey.trigger).where(Journey.active.is_(True)).order_by(Journey.id)
        ):
            by_trigger.setdefault(on, []).append(journey_id)
        return by_trigger

    return per_transaction(JOURNEYS_KEY, load).get(trigger, [])


JOURNEYS_KEY = "huiyuan.intel.journeys"


def enroll(trigger: str, entries: Sequence[tuple[int, str, datetime]]) -> None:
    """Members enter every active journey with this trigger, once per triggering event."""
    if not entries:
        return
    journey_ids = _active_journeys(trigger)
    if not journey_ids:
        return
    rows = [
        {"journey_id": j, "member_id": m, "trigger_key": key, "started_at": at}
        for j in journey_ids
        for m, key, at in entries
    ]
    insert_ignore(JourneyEnrollment.__table__, rows, ["journey_id", "member_id", "trigger_key"])


def journey_counts(journey_id: int) -> dict[str, Any]:
    from sqlalchemy import func

    enrolled = db.session.scalar(
        select(func.count()).where(JourneyEnrollment.journey_id == journey_id)
    )
    per_step = db.session.execute(
        select(JourneyStepRun.step, JourneyStepRun.status, func.count())
        .join(JourneyEnrollment, JourneyEnrollment.id == JourneyStepRun.enrollment_id)
        .where(JourneyEnrollment.journey_id == journey_id)
        .group_by(JourneyStepRun.step, JourneyStepRun.status)
    ).all()
    steps: dict[int, dict[str, int]] = {}
    for step, status, count in per_step:
        steps.setdefault(step, {"done": 0, "skipped": 0})[status] = count
    return {
        "enrolled": enrolled or 0,
        "steps": [{"step": k, **v} for k, v in sorted(steps.items())],
    }


def _due(journey: Journey, step: int, now: datetime, limit: int) -> list[tuple[int, int, datetime]]:
    day = journey.steps[step]["day"]
    done = exists().where(
        JourneyStepRun.enrollment_id == JourneyEnrollment.id, JourneyStepRun.step == step
    )
    rows = db.session.execute(
        select(JourneyEnrollment.id, JourneyEnrollment.member_id, JourneyEnrollment.started_at)
        .where(
            JourneyEnrollment.journey_id == journey.id,
            JourneyEnrollment.started_at <= now - timedelta(days=day),
            ~done,
        )
        .order_by(JourneyEnrollment.id)
        .limit(limit)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def _skip_reason(
    conditions: list[str], member: Member | None, stats: MemberStats | None, started: datetime
) -> str | None:
    if member is None or member.status != "active":
        return "member_gone"
    if "opted_in" in conditions and member.marketing_opt_out:
        return "opted_out"
    if "no_repurchase" in conditions and stats is not None and stats.last_purchase_at is not None:
        if stats.last_purchase_at > started:
            return "repurchased"
    return None


def run_step_chunk(journey: Journey, step: int, now: datetime, limit: int = CHUNK) -> int:
    """One transaction: run ``step`` for up to ``limit`` due enrollments. Returns how many."""
    spec = journey.steps[step]
    with unit_of_work():
        due = _due(journey, step, now, limit)
        if not due:
            return 0
        member_ids = [m for _, m, _ in due]
        members = {
            m.id: m for m in db.session.scalars(select(Member).where(Member.id.in_(member_ids)))
        }
        stats = {
            s.member_id: s
            for s in db.session.scalars(
                select(MemberStats).where(MemberStats.member_id.in_(member_ids))
            )
        }
        runs = []
        for enrollment_id, member_id, started in due:
            reason = _skip_reason(
                spec["conditions"], members.get(member_id), stats.get(member_id), started
            )
            if reason is None:
                key = f"journey:{journey.id}:enrollment:{enrollment_id}:step:{step}"
                reason = act(member_id, spec["action"], key=key, source="journey")
            runs.append(
                {
                    "enrollment_id": enrollment_id,
                    "step": step,
                    "status": "done" if reason is None else "skipped",
                    "reason": reason,
                    "at": now,
                }
            )
        insert_ignore(JourneyStepRun.__table__, runs, ["enrollment_id", "step"])
    return len(due)


def run_journeys(
    now: datetime | None = None, *, max_chunks: int | None = None, chunk: int = CHUNK
) -> dict[str, int]:
    """Every due step of every active journey, ``chunk`` enrollments per transaction
    (``max_chunks``: stop early)."""
    now = now or utcnow()
    processed = chunks = 0
    journeys = db.session.scalars(
        select(Journey).where(Journey.active.is_(True)).order_by(Journey.id)
    ).all()
    for journey in journeys:
        for step in range(len(journey.steps)):
            while max_chunks is None or chunks < max_chunks:
                n = run_step_chunk(journey, step, now, chunk)
                if not n:
                    break
                processed += n
                chunks += 1
    db.session.commit()
    return {"steps_run": processed}
