from __future__ import annotations

import marshmallow as ma

from app.common.pagination import PageQuerySchema
from app.tags.models import TAG_KINDS

_name = ma.validate.Length(1, 50)
_kind = ma.fields.String(load_default="static", validate=ma.validate.OneOf(TAG_KINDS))


class TagSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "static (a fact) or dynamic (intent, state)"})
    position = ma.fields.Integer()
    archived = ma.fields.Function(lambda t: t.archived_at is not None)


class TagGroupSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    exclusive = ma.fields.Boolean(metadata={"description": "a member carries at most one tag"})
    position = ma.fields.Integer()
    archived = ma.fields.Function(lambda g: g.archived_at is not None)
    tags = ma.fields.List(ma.fields.Nested(TagSchema))


class TagGroupListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TagGroupSchema))
    next_cursor = ma.fields.String(allow_none=True)


class TagGroupInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=_name)
    exclusive = ma.fields.Boolean(required=True)
    tags = ma.fields.List(
        ma.fields.String(validate=_name), load_default=list, validate=ma.validate.Length(max=50)
    )
    kind = _kind


class RenameSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=_name)


class TagInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=_name)
    kind = _kind


class GroupOrderSchema(ma.Schema):
    group_ids = ma.fields.List(
        ma.fields.Integer(), required=True, validate=ma.validate.Length(1, 200)
    )


class TagOrderSchema(ma.Schema):
    tag_ids = ma.fields.List(ma.fields.Integer(), required=True, validate=ma.validate.Length(1, 50))


class TagRuleInSchema(ma.Schema):
    tag_id = ma.fields.Integer(required=True)
    skus = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(1, 64)),
        required=True,
        validate=ma.validate.Length(1, 200),
    )


class TagRuleSchema(ma.Schema):
    id = ma.fields.Integer()
    tag_id = ma.fields.Integer()
    tag_name = ma.fields.Function(lambda r: r.tag.name)
    skus = ma.fields.Function(lambda r: [s.sku for s in r.skus])
    archived = ma.fields.Function(lambda r: r.archived_at is not None)
    created_at = ma.fields.AwareDateTime()


class TagRuleListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TagRuleSchema))
    next_cursor = ma.fields.String(allow_none=True)


class TagGroupQuerySchema(PageQuerySchema):
    include_archived = ma.fields.Boolean(load_default=True)


class TagHistoryQuerySchema(PageQuerySchema):
    member_id = ma.fields.Integer(required=True)


class TagEventSchema(ma.Schema):
    id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    tag_id = ma.fields.Integer()
    tag_name = ma.fields.Function(lambda e: e.tag.name)
    action = ma.fields.String(metadata={"description": "added | removed"})
    source = ma.fields.String(metadata={"description": "clerk | rule | merge"})
    clerk_id = ma.fields.Integer(allow_none=True)
    store_id = ma.fields.Integer(allow_none=True)
    sale_key = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class TagHistorySchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TagEventSchema))
    next_cursor = ma.fields.String(allow_none=True)
