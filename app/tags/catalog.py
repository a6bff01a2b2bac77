"""The tag catalog HQ manages: groups, tags, their order for quick tapping, archiving."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
from app.db import unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.tags.models import TAG_KINDS, Tag, TagGroup


def get_group(group_id: int) -> TagGroup:
    group = db.session.get(TagGroup, group_id)
    if group is None:
        raise NotFound("tag group not found", code="TAG_GROUP_NOT_FOUND")
    return group


def get_tag(tag_id: int) -> Tag:
    tag = db.session.get(Tag, tag_id)
    if tag is None:
        raise NotFound("tag not found", code="TAG_NOT_FOUND")
    return tag


def _check_kind(kind: str) -> None:
    if kind not in TAG_KINDS:
        raise ValidationFailed(
            f"kind must be one of {', '.join(TAG_KINDS)}",
            code="INVALID_TAG_KIND",
            details={"kind": ["unknown"]},
        )


def create_group(
    name: str, *, exclusive: bool, tag_names: list[str], kind: str = "static"
) -> TagGroup:
    """A new group, placed last, with its tags in the order given."""
    _check_kind(kind)
    if len(set(tag_names)) != len(tag_names):
        raise ValidationFailed(
            "tag names repeat", code="DUPLICATE_TAG_NAME", details={"tags": ["names repeat"]}
        )
    with unit_of_work():
        last = db.session.scalar(select(func.max(TagGroup.position)))
        group = TagGroup(name=name, exclusive=exclusive, position=(last or 0) + 1)
        db.session.add(group)
        try:
            db.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"tag group {name!r} exists", code="TAG_GROUP_EXISTS") from exc
        for position, tag_name in enumerate(tag_names):
            db.session.add(Tag(group_id=group.id, name=tag_name, kind=kind, position=position))
        db.session.flush()
        db.session.refresh(group)
    return group


def rename_group(group_id: int, name: str) -> TagGroup:
    """Rename a group (members' tags and history follow: they hold the group's id)."""
    with unit_of_work():
        group = get_group(group_id)
        group.name = name
        try:
            db.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"tag group {name!r} exists", code="TAG_GROUP_EXISTS") from exc
    return group


def rename_tag(tag_id: int, name: str) -> Tag:
    with unit_of_work():
        tag = get_tag(tag_id)
        tag.name = name
        try:
            db.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"tag {name!r} exists in its group", code="TAG_EXISTS") from exc
    return tag


def add_tag(group_id: int, name: str, kind: str = "static") -> Tag:
    _check_kind(kind)
    with unit_of_work():
        group = get_group(group_id)
        last = db.session.scalar(select(func.max(Tag.position)).where(Tag.group_id == group.id))
        tag = Tag(group_id=group.id, name=name, kind=kind, position=(last or 0) + 1)
        db.session.add(tag)
        try:
            db.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"tag {name!r} exists in this group", code="TAG_EXISTS") from exc
    return tag


def archive_group(group_id: int) -> TagGroup:
    """Archived groups leave the clerks' catalog; their tags cannot be applied any more."""
    with unit_of_work():
        group = get_group(group_id)
        group.archived_at = group.archived_at or utcnow()
    return group


def archive_tag(tag_id: int) -> Tag:
    with unit_of_work():
        tag = get_tag(tag_id)
        tag.archived_at = tag.archived_at or utcnow()
    return tag


def reorder_groups(group_ids: list[int]) -> list[TagGroup]:
    """Positions follow the order given; groups not listed keep theirs, after the listed ones."""
    with unit_of_work():
        groups = _all_found(TagGroup, group_ids, "TAG_GROUP_NOT_FOUND")
        _renumber(groups, others=select(TagGroup).where(TagGroup.id.not_in(group_ids)))
    return groups


def reorder_tags(group_id: int, tag_ids: list[int]) -> TagGroup:
    with unit_of_work():
        group = get_group(group_id)
        tags = _all_found(Tag, tag_ids, "TAG_NOT_FOUND")
        if any(tag.group_id != group.id for tag in tags):
            raise ValidationFailed(
                "every tag must belong to this group",
                code="TAG_NOT_IN_GROUP",
                details={"tag_ids": ["not in this group"]},
            )
        _renumber(tags, others=select(Tag).where(Tag.group_id == group.id, Tag.id.not_in(tag_ids)))
        db.session.flush()
        db.session.refresh(group)
    return group


def _all_found(model: type, ids: list[int], code: str) -> list:
    if len(set(ids)) != len(ids):
        raise ValidationFailed("ids repeat", code="DUPLICATE_ID", details={"ids": ["repeat"]})
    rows = {row.id: row for row in db.session.scalars(select(model).where(model.id.in_(ids)))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"not found: {missing}", code=code, details={"ids": missing})
    return [rows[i] for i in ids]


def _renumber(ordered: list, *, others: object) -> None:
    rest = sorted(db.session.scalars(others), key=lambda row: (row.position, row.id))
    for position, row in enumerate([*ordered, *rest]):
        row.position = position


def active_catalog() -> list[TagGroup]:
    """What a clerk taps: live groups in order; their live tags via ``live_tags``."""
    return list(
        db.session.scalars(
            select(TagGroup)
            .where(TagGroup.archived_at.is_(None))
            .order_by(TagGroup.position, TagGroup.id)
        )
    )


def live_tags(group: TagGroup) -> list[Tag]:
    return [tag for tag in group.tags if tag.archived_at is None]
