"""Manual adjustments by HQ: signed points with a required reason, recorded with the actor."""

from __future__ import annotations

import uuid

from app.db import transaction
from app.errors import Conflict, ValidationFailed
from app.members.services import get_member
from app.points.services import PostResult, post_entry

MAX_ADJUSTMENT = 10_000_000


def adjust_points(
    member_id: int,
    points: int,
    *,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
) -> PostResult:
    """Post an ``adjust`` entry in its own transaction. A repeated key returns the first entry.

    A negative adjustment may not take the balance below zero (``INSUFFICIENT_POINTS``).
    """
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        raise ValidationFailed(
            "points must be non-zero and at most 10,000,000 either way",
            code="INVALID_POINTS",
            details={"points": ["must be non-zero and within ±10,000,000"]},
        )
    if not reason or not reason.strip():
        raise ValidationFailed(
            "a reason is required", code="REASON_REQUIRED", details={"reason": ["required"]}
        )
    key = f"adjust:{idempotency_key}" if idempotency_key else f"adjust:{uuid.uuid4().hex}"

    def attempt() -> PostResult:
        member = get_member(member_id)
        if member.merged_into_id is not None:
            raise Conflict(
                "member was merged into another",
                code="MEMBER_MERGED",
                details={"merged_into": member.merged_into_id},
            )
        return post_entry(
            member_id,
            points,
            kind="adjust",
            idempotency_key=key,
            ref_type="admin",
            ref_id=actor,
            actor=actor,
            reason=reason.strip(),
        )

    return transaction(attempt)
