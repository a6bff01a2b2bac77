"""What a campaign or a journey step does to one member: a coupon, a message or points.

Every action carries a key unique to (campaign or journey step, member) and passes it to the
service that acts: the coupon's ``issue_key``, the message's ``dedupe_key``, the ledger
entry's ``idempotency_key``. Running an action again with the same key changes nothing, so a
worker killed between acting and recording it cannot make a member get it twice.
"""

from __future__ import annotations

from typing import Any

from app.errors import DomainError, ValidationFailed
from app.extensions import db
from app.outbox.models import MESSAGE_KINDS

ACTION_KINDS = ("issue_coupon", "message", "points")


def validate_action(action: Any, *, field: str = "action") -> dict:
    """``{issue_coupon: template_id}`` | ``{message: kind}`` | ``{points: n, reason}``."""
    from app.coupons.models import CouponTemplate

    def bad(why: str) -> ValidationFailed:
        return ValidationFailed(why, code="INVALID_ACTION", details={field: [why]})

    if not isinstance(action, dict):
        raise bad("an object with one of issue_coupon, message, points")
    kinds = [k for k in ACTION_KINDS if k in action]
    if len(kinds) != 1:
        raise bad("exactly one of issue_coupon, message, points")
    kind = kinds[0]
    value = action[kind]
    if kind == "issue_coupon":
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or db.session.get(CouponTemplate, value) is None
        ):
            raise bad("issue_coupon: an existing coupon template id")
        return {"issue_coupon": value}
    if kind == "message":
        if value not in MESSAGE_KINDS:
            raise bad(f"message: one of {', '.join(sorted(MESSAGE_KINDS))}")
        payload = action.get("payload") or {}
        if not isinstance(payload, dict):
            raise bad("payload: an object")
        return {"message": value, "payload": payload}
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 1_000_000:
        raise bad("points: a whole number from 1 to 1000000")
    reason = action.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
        raise bad("reason: required with points (up to 200 characters)")
    return {"points": value, "reason": reason.strip()}


def act(member_id: int, action: dict, *, key: str, source: str) -> str | None:
    """Do ``action`` for a member inside the caller's transaction, once per ``key``.

    Returns None when done, or the code of why it could not be done (stock out, template
    paused…), in which case nothing was written.
    """
    from app.coupons.issuance import issue_once
    from app.outbox.services import enqueue_message
    from app.points.services import post_entry

    try:
        with db.session.begin_nested():
            if "issue_coupon" in action:
                issue_once(
                    action["issue_coupon"],
                    member_id,
                    source=source,
                    issue_key=key,
                    actor_name=source,
                )
            elif "message" in action:
                payload = dict(action.get("payload") or {})
                enqueue_message(member_id, action["message"], payload, dedupe_key=key)
            else:
                post_entry(
                    member_id,
                    action["points"],
                    kind="adjust",
                    idempotency_key=key,
                    ref_type=source,
                    ref_id=key,
                    actor=source,
                    reason=action["reason"],
                )
    except DomainError as exc:
        return (exc.code or "REFUSED")[:40]
    return None
