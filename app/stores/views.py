"""Admin endpoints for stores, terminals and clerks: parse, call one service, serialize."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.common.pagination import paginate
from app.stores import services
from app.stores.models import Store
from app.stores.schemas import (
    ClerkInSchema,
    ClerkSchema,
    StoreInSchema,
    StoreListQuerySchema,
    StoreListSchema,
    StoreSchema,
    TerminalCreatedSchema,
    TerminalInSchema,
)

blp = Blueprint(
    "admin_stores",
    __name__,
    url_prefix="/admin/v1/stores",
    description="HQ: stores, POS terminals and clerks",
)


@blp.route("")
class Stores(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreInSchema)
    @blp.response(201, StoreSchema)
    def post(self, body: dict):
        """Create a store"""
        return services.create_store(body["code"], body["name"], body.get("city"))

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreListQuerySchema, location="query")
    @blp.response(200, StoreListSchema)
    def get(self, query: dict):
        """List stores (paginated by id)"""
        items, cursor = paginate(
            select(Store),
            Store.id,
            limit=query["limit"],
            cursor=query["cursor"],
            newest_first=False,
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/<string:code>/terminals")
class Terminals(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TerminalInSchema)
    @blp.response(201, TerminalCreatedSchema)
    def post(self, body: dict, code: str):
        """Register a terminal; the till activates it with the returned code"""
        terminal, activation_code = services.create_terminal(code, body["name"])
        return {
            "terminal_id": terminal.terminal_id,
            "store": code,
            "name": terminal.name,
            "activation_code": activation_code,
            "activation_expires_at": terminal.activation_expires_at,
        }


@blp.route("/<string:code>/clerks")
class Clerks(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ClerkInSchema)
    @blp.response(201, ClerkSchema)
    def post(self, body: dict, code: str):
        """Create a clerk account for a store"""
        return services.create_clerk(code, body["username"], body["password"], body["name"])
