"""Admin member endpoints: import by phone, lookup, detail."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.members import services
from app.members.erasure import erase_member
from app.members.schemas import (
    ErasureSchema,
    MemberImportSchema,
    MemberListSchema,
    MemberLookupSchema,
    MemberSchema,
)

blp = Blueprint(
    "admin_members",
    __name__,
    url_prefix="/admin/v1/members",
    description=(
        "HQ: members. Errors: `MEMBER_EXISTS` (409, import of a known phone), `INVALID_PHONE` "
        "(422), `MEMBER_NOT_FOUND` (404), `LOOKUP_CRITERIA_REQUIRED` (422), "
        "`UNKNOWN_IDENTITY_KIND` (422). `POST /admin/v1/members/{id}/erase` erases a member's "
        "personal data (the member's right to deletion), keeping the fact of erasure."
    ),
)


@blp.route("")
class Members(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(MemberImportSchema)
    @blp.response(201, MemberSchema)
    def post(self, body: dict):
        """Import a member by phone (initial points become an `import` ledger entry)"""
        return services.import_member(**body, actor=g.admin_name)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(MemberLookupSchema, location="query")
    @blp.response(200, MemberListSchema)
    def get(self, query: dict):
        """Find members by phone, or by identity kind and external id"""
        return {"items": services.lookup_members(**query)}


@blp.route("/<int:member_id>")
class MemberDetail(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, MemberSchema)
    def get(self, member_id: int):
        """A member with identities and balance; a merged-away id shows `merged_into`"""
        return services.get_member(member_id)


@blp.route("/<int:member_id>/erase")
class MemberErase(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, ErasureSchema)
    def post(self, member_id: int):
        """Erase a member's personal data: phone, name, birthday, identities, clerk notes and
        tags; points forfeited by a ledger entry, unused coupons voided, tokens ended. The
        erasure itself is kept (who, when, what was forfeited). Erasing twice is a no-op."""
        return erase_member(member_id, requested_by="admin", actor=g.admin_name)
