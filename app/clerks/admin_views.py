"""HQ endpoints about clerks: access log, notes, attribution report, sessions and lockout."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.admin.auth import ADMIN_SECURITY, admin_required, scoped_admin_required
from app.clerks import auth
from app.clerks.attribution import attribution_report, clerk_qr_payload
from app.clerks.models import ClerkAccessLog, ClerkNote
from app.clerks.schemas import (
    AccessLogQuerySchema,
    AccessLogSchema,
    AdminClerkNotesSchema,
    AttributionReportQuerySchema,
    AttributionReportSchema,
    ClerkNotesQuerySchema,
    ClerkQrPayloadSchema,
    ClerkSessionsRevokedSchema,
)
from app.common.pagination import paginate
from app.members.services import resolve_member
from app.operators import authz
from app.operators.scoped import scoped_clerk, store_listing
from app.stores import services as stores
from app.stores.models import Clerk
from app.stores.schemas import (
    ClerkListSchema,
    ClerkSchema,
    ClerkUpdateSchema,
    StoreFilterQuerySchema,
)

blp = Blueprint(
    "admin_clerks",
    __name__,
    url_prefix="/admin/v1",
    description=(
        "HQ: clerks (list, read, update, disable), who looked at whom (the clerk access log), "
        "clerks' notes, new members per clerk and store, clerk sessions and lockouts. Region "
        "and store managers manage their own stores' clerks. Error codes: CLERK_NOT_FOUND "
        "(also outside the token's scope), ROLE_NOT_ALLOWED (403), "
        "MEMBER_NOT_FOUND (404), VALIDATION_ERROR (422)."
    ),
)


@blp.route("/clerk-access-log")
class AccessLog(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(AccessLogQuerySchema(), location="query")
    @blp.response(200, AccessLogSchema)
    def get(self, query: dict):
        """Every clerk request for a member, newest first; filter by member_id or clerk_id"""
        stmt = select(ClerkAccessLog)
        if query["member_id"] is not None:
            stmt = stmt.where(ClerkAccessLog.member_id == query["member_id"])
        if query["clerk_id"] is not None:
            stmt = stmt.where(ClerkAccessLog.clerk_id == query["clerk_id"])
        items, cursor = paginate(
            stmt, ClerkAccessLog.id, limit=query["limit"], cursor=query["cursor"]
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/clerk-notes")
class Notes(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ClerkNotesQuerySchema(), location="query")
    @blp.response(200, AdminClerkNotesSchema)
    def get(self, query: dict):
        """A member's notes from every store, newest first"""
        member_id = resolve_member(query["member_id"]).id
        items, cursor = paginate(
            select(ClerkNote).where(ClerkNote.member_id == member_id),
            ClerkNote.id,
            limit=query["limit"],
            cursor=query["cursor"],
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/attribution-report")
class Report(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(AttributionReportQuerySchema(), location="query")
    @blp.response(200, AttributionReportSchema)
    def get(self, query: dict):
        """New members attributed per store and clerk in [since, until)"""
        return {"items": attribution_report(query["since"], query["until"])}


@blp.route("/clerks/<int:clerk_id>/qr-payload")
class ClerkQr(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, ClerkQrPayloadSchema)
    def get(self, clerk_id: int):
        """The clerk's signed QR payload, to print as a mini-program code"""
        return {"clerk_id": clerk_id, "qr_payload": clerk_qr_payload(scoped_clerk(clerk_id).id)}


@blp.route("/clerks/<int:clerk_id>/revoke-sessions")
class RevokeSessions(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, ClerkSessionsRevokedSchema)
    def post(self, clerk_id: int):
        """End every live session of a clerk (lost tablet, clerk leaving)"""
        scoped_clerk(clerk_id, write=True)
        return {"revoked": auth.revoke_clerk_sessions(clerk_id)}


@blp.route("/clerks/<int:clerk_id>/unlock")
class Unlock(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, ClerkSchema)
    def post(self, clerk_id: int):
        """Lift a lockout after repeated failed logins"""
        scoped_clerk(clerk_id, write=True)
        return auth.unlock_clerk(clerk_id)


@blp.route("/clerks")
class ClerkList(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(StoreFilterQuerySchema(), location="query")
    @blp.response(200, ClerkListSchema)
    def get(self, query: dict):
        """Every clerk in the token's scope (filter by store code and status)"""
        return store_listing(Clerk, query)


@blp.route("/clerks/<int:clerk_id>")
class ClerkDetail(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, ClerkSchema)
    def get(self, clerk_id: int):
        """One clerk"""
        return scoped_clerk(clerk_id)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(ClerkUpdateSchema())
    @blp.response(200, ClerkSchema)
    def patch(self, body: dict, clerk_id: int):
        """Rename a clerk, or move them to another store (both stores must be in scope)"""
        scoped_clerk(clerk_id, write=True)
        if body.get("store"):
            target = stores.get_store_by_code(body["store"])
            authz.require_store(target.id, write=True, code="STORE_NOT_FOUND")
        return stores.update_clerk(clerk_id, body)


@blp.route("/clerks/<int:clerk_id>/disable")
class ClerkDisable(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, ClerkSchema)
    def post(self, clerk_id: int):
        """Disable a clerk: logins are refused and every open session stops at once"""
        scoped_clerk(clerk_id, write=True)
        return stores.set_clerk_status(clerk_id, "disabled")


@blp.route("/clerks/<int:clerk_id>/enable")
class ClerkEnable(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, ClerkSchema)
    def post(self, clerk_id: int):
        """Enable a disabled clerk again (they log in anew)"""
        scoped_clerk(clerk_id, write=True)
        return stores.set_clerk_status(clerk_id, "active")
