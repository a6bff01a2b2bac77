"""HQ endpoints for the tag catalog, SKU tag rules and member tag history."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.common.pagination import PageQuerySchema, paginate
from app.members.services import resolve_member
from app.tags import catalog, rules
from app.tags.models import MemberTagEvent, TagGroup, TagRule
from app.tags.schemas import (
    GroupOrderSchema,
    RenameSchema,
    TagGroupInSchema,
    TagGroupListSchema,
    TagGroupQuerySchema,
    TagGroupSchema,
    TagHistoryQuerySchema,
    TagHistorySchema,
    TagInSchema,
    TagOrderSchema,
    TagRuleInSchema,
    TagRuleListSchema,
    TagRuleSchema,
    TagSchema,
)

blp = Blueprint(
    "admin_tags",
    __name__,
    url_prefix="/admin/v1",
    description=(
        "HQ: the tag catalog clerks tap (groups exclusive or multi-select, tags static or "
        "dynamic, ordering, archiving), SKU tag rules, and every member's tag history. "
        "Error codes: TAG_GROUP_EXISTS, TAG_EXISTS (409), TAG_GROUP_NOT_FOUND, TAG_NOT_FOUND, "
        "TAG_RULE_NOT_FOUND, MEMBER_NOT_FOUND (404), TAG_ARCHIVED (409), DUPLICATE_TAG_NAME, "
        "DUPLICATE_ID, TAG_NOT_IN_GROUP, NO_SKUS, VALIDATION_ERROR (422)."
    ),
)


@blp.route("/tag-groups")
class TagGroups(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TagGroupInSchema())
    @blp.response(201, TagGroupSchema)
    def post(self, body: dict):
        """Create a tag group with its tags"""
        return catalog.create_group(
            body["name"], exclusive=body["exclusive"], tag_names=body["tags"], kind=body["kind"]
        )

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TagGroupQuerySchema(), location="query")
    @blp.response(200, TagGroupListSchema)
    def get(self, query: dict):
        """List tag groups with all their tags (paginated by id; sort by position to display)"""
        stmt = select(TagGroup)
        if not query["include_archived"]:
            stmt = stmt.where(TagGroup.archived_at.is_(None))
        items, cursor = paginate(
            stmt, TagGroup.id, limit=query["limit"], cursor=query["cursor"], newest_first=False
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/tag-groups/reorder")
class TagGroupOrder(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(GroupOrderSchema())
    @blp.response(200, TagGroupListSchema)
    def post(self, body: dict):
        """Reorder groups: the listed ones first, in the order given"""
        return {"items": catalog.reorder_groups(body["group_ids"]), "next_cursor": None}


@blp.route("/tag-groups/<int:group_id>/tags")
class GroupTags(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TagInSchema())
    @blp.response(201, TagSchema)
    def post(self, body: dict, group_id: int):
        """Add a tag to a group (placed last)"""
        return catalog.add_tag(group_id, body["name"], body["kind"])


@blp.route("/tag-groups/<int:group_id>/tags/reorder")
class GroupTagOrder(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TagOrderSchema())
    @blp.response(200, TagGroupSchema)
    def post(self, body: dict, group_id: int):
        """Reorder a group's tags: the listed ones first, in the order given"""
        return catalog.reorder_tags(group_id, body["tag_ids"])


@blp.route("/tag-groups/<int:group_id>")
class TagGroupDetail(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TagGroupSchema)
    def get(self, group_id: int):
        """One tag group with all its tags"""
        return catalog.get_group(group_id)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(RenameSchema())
    @blp.response(200, TagGroupSchema)
    def patch(self, body: dict, group_id: int):
        """Rename a tag group (exclusive stays fixed; archive it to disable it)"""
        return catalog.rename_group(group_id, body["name"])


@blp.route("/tags/<int:tag_id>")
class TagDetail(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(RenameSchema())
    @blp.response(200, TagSchema)
    def patch(self, body: dict, tag_id: int):
        """Rename a tag (members carrying it keep it)"""
        return catalog.rename_tag(tag_id, body["name"])


@blp.route("/tag-groups/<int:group_id>/archive")
class GroupArchive(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TagGroupSchema)
    def post(self, group_id: int):
        """Archive a group: gone from the clerks' catalog, its tags no longer applicable"""
        return catalog.archive_group(group_id)


@blp.route("/tags/<int:tag_id>/archive")
class TagArchive(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TagSchema)
    def post(self, tag_id: int):
        """Archive a tag: it stays in history but can no longer be applied"""
        return catalog.archive_tag(tag_id)


@blp.route("/tag-rules")
class TagRules(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TagRuleInSchema())
    @blp.response(201, TagRuleSchema)
    def post(self, body: dict):
        """Create a rule: buying any of these SKUs applies the tag (source "rule")"""
        return rules.create_rule(body["tag_id"], body["skus"])

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, TagRuleListSchema)
    def get(self, query: dict):
        """List tag rules (paginated by id)"""
        items, cursor = paginate(
            select(TagRule),
            TagRule.id,
            limit=query["limit"],
            cursor=query["cursor"],
            newest_first=False,
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/tag-rules/<int:rule_id>/archive")
class TagRuleArchive(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, TagRuleSchema)
    def post(self, rule_id: int):
        """Archive a rule: later sales no longer apply it"""
        return rules.archive_rule(rule_id)


@blp.route("/tag-history")
class TagHistory(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TagHistoryQuerySchema(), location="query")
    @blp.response(200, TagHistorySchema)
    def get(self, query: dict):
        """A member's tag changes, newest first: tag, added/removed, source, clerk, store, time"""
        member_id = resolve_member(query["member_id"]).id
        items, cursor = paginate(
            select(MemberTagEvent).where(MemberTagEvent.member_id == member_id),
            MemberTagEvent.id,
            limit=query["limit"],
            cursor=query["cursor"],
        )
        return {"items": items, "next_cursor": cursor}
