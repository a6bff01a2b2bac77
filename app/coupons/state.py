"""The coupon state machine: the only place a coupon's state or owner changes.

Every transition writes a :class:`CouponEvent`. A transition not in :data:`TRANSITIONS` is
refused with the code that says why the coupon cannot do it (already used, expired, …).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.common.clock import utcnow
from app.coupons.errors import refused
from app.coupons.messages import on_coupon_event
from app.coupons.models import Coupon, CouponEvent
from app.errors import Conflict
from app.extensions import db

# (from_state, to_state) -> the event kinds that may make that step
TRANSITIONS: dict[tuple[str | None, str], frozenset[str]] = {
    (None, "available"): frozenset({"issued"}),
    ("available", "gifting"): frozenset({"gift_created"}),
    ("gifting", "available"): frozenset({"gift_cancelled", "gift_returned", "gift_claimed"}),
    ("gifting", "expired"): frozenset({"gift_cancelled", "gift_returned"}),
    ("available", "held"): frozenset({"held"}),
    ("held", "available"): frozenset({"released"}),
    ("held", "expired"): frozenset({"released"}),
    ("held", "redeemed"): frozenset({"redeemed"}),
    ("available", "expired"): frozenset({"expired"}),
    ("available", "void"): frozenset({"voided"}),
    ("gifting", "void"): frozenset({"voided"}),
}
# Steps that keep the state but record something (a member merge moves the owner).
SAME_STATE_KINDS = frozenset({"merged"})


@dataclass(frozen=True)
class Actor:
    """Who acts and through which door: ``member:12`` on ``miniprogram``, ``job`` on ``job``…"""

    name: str
    channel: str
    store_id: int | None = None


def refusal_for(state: str) -> Conflict:
    """The refusal for a coupon that cannot be used because of its ``state``."""
    if state == "redeemed":
        return refused("COUPON_ALREADY_USED", state=state)
    if state == "expired":
        return refused("COUPON_EXPIRED", state=state)
    return refused("COUPON_NOT_AVAILABLE", state=state)


def transition(
    coupon: Coupon,
    to_state: str,
    kind: str,
    actor: Actor,
    *,
    owner_id: int | None = None,
    ref: str | None = None,
) -> CouponEvent:
    """Move ``coupon`` to ``to_state`` (and to ``owner_id`` if given), recording the event."""
    from_state = coupon.state if coupon.id is not None else None
    if from_state == to_state and kind in SAME_STATE_KINDS:
        pass
    elif kind not in TRANSITIONS.get((from_state, to_state), frozenset()):
        raise refusal_for(from_state or "new")
    now = utcnow()
    previous_owner_id = coupon.owner_id
    coupon.state = to_state
    if owner_id is not None:
        coupon.owner_id = owner_id
    coupon.updated_at = now
    if coupon.id is None:
        db.session.add(coupon)
        db.session.flush()
    event = CouponEvent(
        coupon_id=coupon.id,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        owner_id=coupon.owner_id,
        actor=actor.name,
        channel=actor.channel,
        store_id=actor.store_id,
        ref=ref,
        created_at=now,
    )
    db.session.add(event)
    db.session.flush()
    on_coupon_event(coupon, event, previous_owner_id)
    return event
