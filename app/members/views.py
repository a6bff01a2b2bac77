"""Admin member endpoints: import by phone, lookup, search, detail, coupons, gifts, tag history.

Scope: region and store managers see the members who joined or bought at their stores; a
member outside the scope answers 404 MEMBER_NOT_FOUND. Only ``hq_admin`` sees whole phones.
"""

from __future__ import annotations

import marshmallow as ma
from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import or_, select

from app.admin.auth import ADMIN_SECURITY, admin_required, scoped_admin_required
from app.common.pagination import PageQuerySchema, paginate
from app.coupons.models import CouponGift
from app.coupons.queries import member_coupons
from app.coupons.schemas import MemberCouponListSchema, MemberCouponQuerySchema
from app.members import services
from app.members.erasure import erase_member
from app.members.schemas import (
    ErasureSchema,
    GiftListSchema,
    MemberImportSchema,
    MemberListSchema,
    MemberLookupSchema,
    MemberPageSchema,
    MemberSchema,
)
from app.members.search import member_filters, search_members
from app.operators import authz
from app.operators.scoped import scoped_member
from app.tags.models import MemberTagEvent
from app.tags.schemas import TagHistorySchema

blp = Blueprint(
    "admin_members",
    __name__,
    url_prefix="/admin/v1/members",
    description=(
        "HQ: members. Errors: `MEMBER_EXISTS` (409, import of a known phone), `INVALID_PHONE` "
        "(422), `MEMBER_NOT_FOUND` (404, also outside the token's store scope), "
        "`LOOKUP_CRITERIA_REQUIRED` (422), `UNKNOWN_IDENTITY_KIND` (422), `UNKNOWN_FILTER` "
        "(422), `INVALID_PHONE_FRAGMENT` (422), `ROLE_NOT_ALLOWED` (403). "
        "`POST /admin/v1/members/{id}/erase` erases a member's "
        "personal data (the member's right to deletion), keeping the fact of erasure."
    ),
)


@blp.route("")
class Members(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(MemberImportSchema())
    @blp.response(201, MemberSchema)
    def post(self, body: dict):
        """Import a member by phone (initial points become an `import` ledger entry; HQ admin)"""
        authz.check_hq_admin()
        return services.import_member(**body, actor=g.admin_name)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(MemberLookupSchema(), location="query")
    @blp.response(200, MemberListSchema)
    def get(self, query: dict):
        """Find members by phone, or by identity kind and external id (within the scope)"""
        found = services.lookup_members(**query)
        return {"items": [m for m in found if authz.principal_sees_member(m.id)]}


class MemberSearchQuerySchema(PageQuerySchema):
    class Meta:
        unknown = ma.INCLUDE


@blp.route("/search")
class Search(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(
        security=ADMIN_SECURITY,
        description="Live members matching every filter given, newest first, within the token's "
        "store scope. Filters (query parameters): "
        + "; ".join(f"`{k}`: {v}" for k, v in member_filters().items())
        + ". Features add more (tier, lifecycle) as they land.",
    )
    @blp.arguments(MemberSearchQuerySchema(), location="query")
    @blp.response(200, MemberPageSchema)
    def get(self, query: dict):
        """Search members (paginated)"""
        criteria = {k: v for k, v in request.args.items() if k not in ("limit", "cursor")}
        items, cursor = search_members(criteria, limit=query["limit"], cursor=query["cursor"])
        return {"items": items, "next_cursor": cursor}


@blp.route("/<int:member_id>")
class MemberDetail(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, MemberSchema)
    def get(self, member_id: int):
        """A member with identities and balance; a merged-away id shows `merged_into`"""
        return scoped_member(member_id)


@blp.route("/<int:member_id>/coupons")
class MemberCoupons(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(MemberCouponQuerySchema(), location="query")
    @blp.response(200, MemberCouponListSchema)
    def get(self, query: dict, member_id: int):
        """A member's coupons, newest first (filter by state)"""
        member = services.resolve_member(scoped_member(member_id).id)
        items, cursor = member_coupons(
            member.id, state=query["state"], limit=query["limit"], cursor=query["cursor"]
        )
        return {"items": items, "next_cursor": cursor}


@blp.route("/<int:member_id>/gifts")
class MemberGifts(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, GiftListSchema)
    def get(self, query: dict, member_id: int):
        """Coupons the member gave or received as gifts, newest first"""
        member = services.resolve_member(scoped_member(member_id).id)
        stmt = select(CouponGift).where(
            or_(CouponGift.giver_id == member.id, CouponGift.claimed_by_id == member.id)
        )
        items, cursor = paginate(stmt, CouponGift.id, limit=query["limit"], cursor=query["cursor"])
        return {"items": items, "next_cursor": cursor}


@blp.route("/<int:member_id>/tag-history")
class MemberTagHistory(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, TagHistorySchema)
    def get(self, query: dict, member_id: int):
        """A member's tag changes, newest first: tag, added/removed, source, clerk, store, time"""
        member = services.resolve_member(scoped_member(member_id).id)
        items, cursor = paginate(
            select(MemberTagEvent).where(MemberTagEvent.member_id == member.id),
            MemberTagEvent.id,
            limit=query["limit"],
            cursor=query["cursor"],
        )
        return {"items": items, "next_cursor": cursor}


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
