"""Admin endpoints for stores, terminals and clerks: parse, call one service, serialize.

Scope: region and store managers see and manage their own stores only (terminals and clerks
included); creating, renaming and disabling stores is for HQ admins.
"""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.admin.auth import ADMIN_SECURITY, scoped_admin_required
from app.common.pagination import paginate
from app.operators import authz
from app.operators.scoped import scoped_store, store_listing
from app.pos.terminals import revoke_store_terminals
from app.stores import services
from app.stores.models import Clerk, Store, Terminal
from app.stores.schemas import (
    ClerkInSchema,
    ClerkListSchema,
    ClerkSchema,
    StoreFilterQuerySchema,
    StoreInSchema,
    StoreListQuerySchema,
    StoreListSchema,
    StoreSchema,
    StoreUpdateSchema,
    TerminalCreatedSchema,
    TerminalInSchema,
    TerminalListSchema,
)

blp = Blueprint(
    "admin_stores",
    __name__,
    url_prefix="/admin/v1/stores",
    description="HQ: stores, POS terminals and clerks. Error codes: STORE_NOT_FOUND (404, also "
    "for a store outside the token's scope), STORE_EXISTS, USERNAME_TAKEN (409), "
    "ROLE_NOT_ALLOWED (403: the token's role may not do this).",
)


@blp.route("")
class Stores(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreInSchema())
    @blp.response(201, StoreSchema)
    def post(self, body: dict):
        """Create a store (HQ admin)"""
        authz.check_hq_admin()
        return services.create_store(body["code"], body["name"], body.get("city"))

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreListQuerySchema(), location="query")
    @blp.response(200, StoreListSchema)
    def get(self, query: dict):
        """List stores (paginated by id); a scoped token sees its own stores"""
        items, cursor = paginate(
            select(Store).where(authz.store_clause(Store.id)),
            Store.id,
            limit=query["limit"],
            cursor=query["cursor"],
            newest_first=False,
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/<string:code>")
class StoreDetail(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, StoreSchema)
    def get(self, code: str):
        """One store"""
        return scoped_store(code)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreUpdateSchema())
    @blp.response(200, StoreSchema)
    def patch(self, body: dict, code: str):
        """Rename a store or change its city (HQ admin; the code is fixed)"""
        authz.check_hq_admin()
        return services.update_store(code, body)


@blp.route("/<string:code>/disable")
class StoreDisable(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, StoreSchema)
    def post(self, code: str):
        """Disable a store (HQ admin): its terminals are revoked; its history stays"""
        authz.check_hq_admin()
        revoke_store_terminals(services.get_store_by_code(code).id)
        return services.set_store_status(code, "disabled")


@blp.route("/<string:code>/enable")
class StoreEnable(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, StoreSchema)
    def post(self, code: str):
        """Enable a disabled store again (HQ admin; register new terminals for it)"""
        authz.check_hq_admin()
        return services.set_store_status(code, "active")


@blp.route("/<string:code>/terminals")
class Terminals(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(TerminalInSchema())
    @blp.response(201, TerminalCreatedSchema)
    def post(self, body: dict, code: str):
        """Register a terminal; the till activates it with the returned code"""
        scoped_store(code, write=True)
        terminal, activation_code = services.create_terminal(code, body["name"])
        return {
            "terminal_id": terminal.terminal_id,
            "store": code,
            "name": terminal.name,
            "activation_code": activation_code,
            "activation_expires_at": terminal.activation_expires_at,
        }

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreFilterQuerySchema(), location="query")
    @blp.response(200, TerminalListSchema)
    def get(self, query: dict, code: str):
        """A store's terminals (paginated by id)"""
        return store_listing(Terminal, {**query, "store": code})


@blp.route("/<string:code>/clerks")
class Clerks(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ClerkInSchema())
    @blp.response(201, ClerkSchema)
    def post(self, body: dict, code: str):
        """Create a clerk account for a store"""
        scoped_store(code, write=True)
        return services.create_clerk(code, body["username"], body["password"], body["name"])

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreFilterQuerySchema(), location="query")
    @blp.response(200, ClerkListSchema)
    def get(self, query: dict, code: str):
        """A store's clerks (paginated by id)"""
        return store_listing(Clerk, {**query, "store": code})
