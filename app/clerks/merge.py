"""Member merge hook: what clerks know about the absorbed member moves to the survivor."""

from __future__ import annotations

from sqlalchemy import update

from app.clerks.models import ClerkAccessGrant, ClerkNote, MemberAttribution
from app.extensions import db
from app.tags.models import TagRuleApplication
from app.tags.services import move_tags_on_merge


def on_member_merge(absorbed_id: int, survivor_id: int) -> None:
    """Move tags (exclusive groups keep one), tag history, notes, grants and attribution.

    Called by the identity merge inside its transaction (never commits); safe to call twice.
    The access log is left as written: it records which id a clerk asked for.
    """
    move_tags_on_merge(absorbed_id, survivor_id)
    for model in (ClerkNote, ClerkAccessGrant, TagRuleApplication):
        db.session.execute(
            update(model).where(model.member_id == absorbed_id).values(member_id=survivor_id)
        )
    _move_attribution(absorbed_id, survivor_id)
    db.session.flush()


def _move_attribution(absorbed_id: int, survivor_id: int) -> None:
    """The first attribution of the two people wins."""
    moving = db.session.get(MemberAttribution, absorbed_id)
    if moving is None:
        return
    staying = db.session.get(MemberAttribution, survivor_id)
    if staying is not None and staying.attributed_at <= moving.attributed_at:
        db.session.delete(moving)
        return
    if staying is not None:
        db.session.delete(staying)
        db.session.flush()
    clerk_id, store_id, at = moving.clerk_id, moving.store_id, moving.attributed_at
    db.session.delete(moving)
    db.session.flush()
    db.session.add(
        MemberAttribution(
            member_id=survivor_id, clerk_id=clerk_id, store_id=store_id, attributed_at=at
        )
    )
