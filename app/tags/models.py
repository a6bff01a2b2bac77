"""Tag catalog (groups, tags), member tags with their history, and SKU tag rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

TAG_KINDS = ("static", "dynamic")  # a fact (gender, build) | an intent or state (complaint)
TAG_SOURCES = ("clerk", "rule", "merge")
TAG_ACTIONS = ("added", "removed")


class TagGroup(db.Model):
    """A group of tags; in an ``exclusive`` group a member carries at most one tag.

    ``exclusive`` is fixed at creation: the member-tag constraint below relies on it.
    """

    __tablename__ = "tag_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    exclusive: Mapped[bool] = mapped_column(Boolean)
    position: Mapped[int] = mapped_column(Integer, default=0)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tags: Mapped[list[Tag]] = relationship(
        back_populates="group", order_by="(Tag.position, Tag.id)"
    )


class Tag(db.Model):
    """A tag clerks tap. Archived tags stay in members' history but cannot be applied."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("group_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("tag_groups.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(16), default="static")
    position: Mapped[int] = mapped_column(Integer, default=0)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    group: Mapped[TagGroup] = relationship(back_populates="tags")

    @property
    def applicable(self) -> bool:
        return self.archived_at is None and self.group.archived_at is None


class MemberTag(db.Model):
    """A tag a member carries now.

    ``exclusive_group_id`` is set only for tags of exclusive groups, so the unique constraint
    (member, exclusive group) lets the database itself refuse a second tag of such a group;
    NULLs (multi-select groups) never collide.
    """

    __tablename__ = "member_tags"
    __table_args__ = (
        UniqueConstraint("member_id", "tag_id"),
        UniqueConstraint("member_id", "exclusive_group_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), index=True)
    exclusive_group_id: Mapped[int | None] = mapped_column(ForeignKey("tag_groups.id"))
    source: Mapped[str] = mapped_column(String(16))
    clerk_id: Mapped[int | None] = mapped_column(ForeignKey("clerks.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tag: Mapped[Tag] = relationship()


class MemberTagEvent(db.Model):
    """One change to a member's tags: append-only history HQ reads."""

    __tablename__ = "member_tag_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), index=True)
    action: Mapped[str] = mapped_column(String(8))  # added | removed
    source: Mapped[str] = mapped_column(String(16))  # clerk | rule | merge
    clerk_id: Mapped[int | None] = mapped_column(ForeignKey("clerks.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    sale_key: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tag: Mapped[Tag] = relationship()


class TagRule(db.Model):
    """ "Buying any of these SKUs applies this tag"."""

    __tablename__ = "tag_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), index=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tag: Mapped[Tag] = relationship()
    skus: Mapped[list[TagRuleSku]] = relationship(order_by="TagRuleSku.sku")


class TagRuleSku(db.Model):
    __tablename__ = "tag_rule_skus"
    __table_args__ = (UniqueConstraint("rule_id", "sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("tag_rules.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64), index=True)


class TagRuleApplication(db.Model):
    """A rule met by a sale: once per (rule, sale), however often the sale is replayed."""

    __tablename__ = "tag_rule_applications"
    __table_args__ = (UniqueConstraint("rule_id", "sale_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("tag_rules.id"))
    sale_key: Mapped[str] = mapped_column(String(160))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    added: Mapped[bool] = mapped_column(Boolean)  # False: the member already had the tag
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
