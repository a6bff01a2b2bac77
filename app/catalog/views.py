"""HQ endpoints for the SKU catalog: which category each SKU code belongs to."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.catalog import services
from app.catalog.models import Sku
from app.catalog.schemas import (
    CategoryListSchema,
    SkuBatchSchema,
    SkuListSchema,
    SkuQuerySchema,
)
from app.common.pagination import paginate

blp = Blueprint(
    "admin_catalog",
    __name__,
    url_prefix="/admin/v1",
    description=(
        "HQ: the SKU catalog. Each entry maps a SKU code, as tills send it on sale lines, to a "
        "category (and a display name). Segments select members who bought a category within "
        "N days (`bought_category`) through it; the category counted is the SKU's category "
        "when the segment is counted, so re-categorising a SKU re-sorts its past sales too. "
        "Error codes: DUPLICATE_SKU, VALIDATION_ERROR (422)."
    ),
)


@blp.route("/skus")
class Skus(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(SkuBatchSchema())
    @blp.response(200, SkuListSchema)
    def put(self, body: dict):
        """Create or change SKU entries (SKU → category, name), up to 1,000 at once

        Entries not named are left as they are. A `null` category takes the SKU out of every
        category. Answers the entries as stored."""
        return {"items": services.set_skus(body["items"]), "next_cursor": None}

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(SkuQuerySchema(), location="query")
    @blp.response(200, SkuListSchema)
    def get(self, query: dict):
        """List catalog entries (paginated by id), optionally of one category or one SKU"""
        stmt = select(Sku)
        if query["category"] is not None:
            stmt = stmt.where(Sku.category == query["category"])
        if query["sku"] is not None:
            stmt = stmt.where(Sku.sku == query["sku"].strip())
        items, cursor = paginate(
            stmt, Sku.id, limit=query["limit"], cursor=query["cursor"], newest_first=False
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/sku-categories")
class Categories(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, CategoryListSchema)
    def get(self):
        """Every category in use, with its number of SKUs"""
        return {"items": services.categories()}
