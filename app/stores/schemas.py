from __future__ import annotations

import marshmallow as ma

from app.common.pagination import PageQuerySchema

_code = ma.validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$", error="letters, digits, - and _, at most 32")


class StoreInSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=_code)
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))
    city = ma.fields.String(load_default=None, validate=ma.validate.Length(max=50))


class StoreSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    city = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"description": "active | disabled"})
    created_at = ma.fields.AwareDateTime()


class StoreUpdateSchema(ma.Schema):
    name = ma.fields.String(validate=ma.validate.Length(1, 100))
    city = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=50))


class StoreListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(StoreSchema))
    next_cursor = ma.fields.String(allow_none=True)


class StoreListQuerySchema(PageQuerySchema):
    pass


class TerminalInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))


class TerminalCreatedSchema(ma.Schema):
    terminal_id = ma.fields.String()
    store = ma.fields.String(metadata={"description": "store code"})
    name = ma.fields.String()
    activation_code = ma.fields.String(
        metadata={"description": "Single use, expires in 24 h; shown only in this response"}
    )
    activation_expires_at = ma.fields.AwareDateTime()


class ClerkInSchema(ma.Schema):
    username = ma.fields.String(
        required=True, validate=ma.validate.Regexp(r"^[A-Za-z0-9_.-]{3,64}$")
    )
    password = ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(8, 128))
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))


class ClerkSchema(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    name = ma.fields.String()
    store = ma.fields.Function(lambda c: c.store.code)
    status = ma.fields.String(metadata={"description": "active | disabled"})
    locked_until = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class TerminalSchema(ma.Schema):
    terminal_id = ma.fields.String()
    store = ma.fields.Function(lambda t: t.store.code, metadata={"description": "store code"})
    name = ma.fields.String()
    status = ma.fields.String(metadata={"description": "pending | active | revoked"})
    activation_expires_at = ma.fields.AwareDateTime(allow_none=True)
    activated_at = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class TerminalListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TerminalSchema))
    next_cursor = ma.fields.String(allow_none=True)


class StoreFilterQuerySchema(PageQuerySchema):
    store = ma.fields.String(load_default=None, metadata={"description": "store code"})
    status = ma.fields.String(load_default=None)


class TerminalUpdateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))


class ClerkListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ClerkSchema))
    next_cursor = ma.fields.String(allow_none=True)


class ClerkUpdateSchema(ma.Schema):
    name = ma.fields.String(validate=ma.validate.Length(1, 100))
    store = ma.fields.String(metadata={"description": "move to this store (code)"})
