from __future__ import annotations

import marshmallow as ma

from app.catalog.models import CATEGORY_LENGTH, SKU_LENGTH
from app.catalog.services import MAX_ITEMS
from app.common.pagination import PageQuerySchema


class SkuSchema(ma.Schema):
    id = ma.fields.Integer()
    sku = ma.fields.String(metadata={"description": "the code tills send on sale lines"})
    name = ma.fields.String(allow_none=True)
    category = ma.fields.String(
        allow_none=True,
        metadata={"description": "the SKU's category (segments: bought_category); null: none"},
    )
    updated_at = ma.fields.DateTime()


class SkuInSchema(ma.Schema):
    sku = ma.fields.String(required=True, validate=ma.validate.Length(1, SKU_LENGTH))
    category = ma.fields.String(
        required=True, allow_none=True, validate=ma.validate.Length(max=CATEGORY_LENGTH)
    )
    name = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=100)
    )


class SkuBatchSchema(ma.Schema):
    items = ma.fields.List(
        ma.fields.Nested(SkuInSchema),
        required=True,
        validate=ma.validate.Length(1, MAX_ITEMS),
        metadata={"description": f"1 to {MAX_ITEMS} entries; a SKU at most once"},
    )


class SkuListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SkuSchema))
    next_cursor = ma.fields.String(allow_none=True)


class SkuQuerySchema(PageQuerySchema):
    category = ma.fields.String(load_default=None, metadata={"description": "only this category"})
    sku = ma.fields.String(load_default=None, metadata={"description": "only this SKU code"})


class CategorySchema(ma.Schema):
    category = ma.fields.String()
    skus = ma.fields.Integer(metadata={"description": "how many SKUs are in it"})


class CategoryListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CategorySchema))
