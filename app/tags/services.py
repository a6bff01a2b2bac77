"""Tags on members: add/remove in one change, exclusive groups keep one, every change recorded.

Every change first locks the member's tag set (the member row, ``FOR NO KEY UPDATE``, which
does not block rows that merely reference the member), so two clerks setting one exclusive
group at once are applied one after the other. The database backs this with a unique
constraint on (member, exclusive group). Functions here work inside the caller's unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update

from app.common.clock import utcnow
from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.members.models import Member
from app.tags.models import MemberTag, MemberTagEvent, Tag, TagGroup


@dataclass(frozen=True)
class Actor:
    """Who changes tags: ``source`` clerk (with clerk and store), rule (store, sale) or merge."""

    source: str
    clerk_id: int | None = None
    store_id: int | None = None
    sale_key: str | None = None


def lock_member_tags(*member_ids: int) -> None:
    """Lock members' tag sets, in id order (so two lockers never wait on each other)."""
    for member_id in sorted(set(member_ids)):
        db.session.execute(
            select(Member.id).where(Member.id == member_id).with_for_update(key_share=True)
        )


def member_tags(member_id: int) -> list[MemberTag]:
    """The tags a member carries, in catalog order."""
    return list(
        db.session.scalars(
            select(MemberTag)
            .join(Tag, Tag.id == MemberTag.tag_id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(MemberTag.member_id == member_id)
            .order_by(TagGroup.position, TagGroup.id, Tag.position, Tag.id)
        )
    )


def _tags_by_id(tag_ids: set[int]) -> dict[int, Tag]:
    tags = {t.id: t for t in db.session.scalars(select(Tag).where(Tag.id.in_(tag_ids)))}
    unknown = sorted(tag_ids - tags.keys())
    if unknown:
        raise ValidationFailed(
            f"unknown tags: {unknown}", code="UNKNOWN_TAG", details={"tags": unknown}
        )
    return tags


def change_member_tags(
    member_id: int, *, add: list[int], remove: list[int], actor: Actor
) -> list[MemberTagEvent]:
    """Apply removals, then additions; returns the events recorded (nothing for no-ops).

    Adding a tag of an exclusive group removes the member's other tag of that group. Archived
    tags cannot be added (they can be removed).
    """
    add_set, remove_set = set(add), set(remove)
    if add_set & remove_set:
        raise ValidationFailed(
            "a tag is both added and removed",
            code="TAG_ADD_REMOVE_OVERLAP",
            details={"add": sorted(add_set & remove_set)},
        )
    tags = _tags_by_id(add_set | remove_set)
    _check_addable([tags[i] for i in add_set])
    lock_member_tags(member_id)
    held = {mt.tag_id: mt for mt in member_tags(member_id)}
    events: list[MemberTagEvent] = []
    for tag_id in sorted(remove_set & held.keys()):
        events.append(_remove(held.pop(tag_id), actor))
    for tag_id in sorted(add_set - held.keys()):
        tag = tags[tag_id]
        if tag.group.exclusive:
            for other in [mt for mt in held.values() if mt.tag.group_id == tag.group_id]:
                events.append(_remove(held.pop(other.tag_id), actor))
        db.session.flush()  # removals reach the database before the exclusive slot is reused
        held[tag_id] = _add(member_id, tag, actor)
        events.append(_event(member_id, tag_id, "added", actor))
    db.session.add_all(events)
    db.session.flush()
    return events


def _check_addable(tags: list[Tag]) -> None:
    archived = sorted(t.id for t in tags if not t.applicable)
    if archived:
        raise Conflict(
            f"archived tags cannot be applied: {archived}",
            code="TAG_ARCHIVED",
            details={"add": archived},
        )
    exclusive_groups = [t.group_id for t in tags if t.group.exclusive]
    if len(exclusive_groups) != len(set(exclusive_groups)):
        raise ValidationFailed(
            "two tags of one exclusive group",
            code="EXCLUSIVE_GROUP_CONFLICT",
            details={"add": ["at most one tag per exclusive group"]},
        )


def _add(member_id: int, tag: Tag, actor: Actor) -> MemberTag:
    member_tag = MemberTag(
        member_id=member_id,
        tag_id=tag.id,
        exclusive_group_id=tag.group_id if tag.group.exclusive else None,
        source=actor.source,
        clerk_id=actor.clerk_id,
        store_id=actor.store_id,
        created_at=utcnow(),
    )
    db.session.add(member_tag)
    return member_tag


def _remove(member_tag: MemberTag, actor: Actor) -> MemberTagEvent:
    db.session.delete(member_tag)
    return _event(member_tag.member_id, member_tag.tag_id, "removed", actor)


def _event(member_id: int, tag_id: int, action: str, actor: Actor) -> MemberTagEvent:
    return MemberTagEvent(
        member_id=member_id,
        tag_id=tag_id,
        action=action,
        source=actor.source,
        clerk_id=actor.clerk_id,
        store_id=actor.store_id,
        sale_key=actor.sale_key,
        created_at=utcnow(),
    )


def move_tags_on_merge(absorbed_id: int, survivor_id: int) -> None:
    """Give the survivor the absorbed member's tags and history.

    A tag both carry stays once. Where both carry a tag of one exclusive group, the more
    recently applied one stays and the other is recorded as removed (source ``merge``).
    """
    lock_member_tags(absorbed_id, survivor_id)
    db.session.execute(
        update(MemberTagEvent)
        .where(MemberTagEvent.member_id == absorbed_id)
        .values(member_id=survivor_id)
    )
    kept = {mt.tag_id: mt for mt in member_tags(survivor_id)}
    by_group = {mt.exclusive_group_id: mt for mt in kept.values() if mt.exclusive_group_id}
    actor = Actor(source="merge")
    for moving in member_tags(absorbed_id):
        if moving.tag_id in kept:
            db.session.delete(moving)
            continue
        rival = by_group.get(moving.exclusive_group_id) if moving.exclusive_group_id else None
        if rival is not None:
            loser = rival if rival.created_at < moving.created_at else moving
            db.session.add(_event(survivor_id, loser.tag_id, "removed", actor))
            db.session.delete(loser)
            if loser is moving:
                continue
            db.session.flush()
        moving.member_id = survivor_id
        kept[moving.tag_id] = moving
        if moving.exclusive_group_id:
            by_group[moving.exclusive_group_id] = moving
        db.session.flush()
    db.session.execute(delete(MemberTag).where(MemberTag.member_id == absorbed_id))
    db.session.flush()
