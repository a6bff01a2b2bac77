"""The clerk tablet API (``/clerk/v1``): parse, call one service, serialize."""

from __future__ import annotations

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app.clerks import auth, services
from app.clerks.attribution import clerk_qr_payload
from app.clerks.auth import CLERK_SECURITY, clerk_required
from app.clerks.schemas import (
    ClerkCatalogSchema,
    ClerkLoginInSchema,
    ClerkLoginSchema,
    ClerkLookupInSchema,
    ClerkMemberViewSchema,
    ClerkMeSchema,
    ClerkNoteInSchema,
    ClerkNoteOutSchema,
    ClerkTagChangeInSchema,
)
from app.tags.catalog import active_catalog, live_tags

blp = Blueprint(
    "clerk_api",
    __name__,
    url_prefix="/clerk/v1",
    description=(
        "The store tablet. A clerk reaches a member only through a lookup (phone or member "
        "code) with the customer present; the lookup grants that clerk, in that store, access "
        "for 30 minutes. Any other member id answers 404 MEMBER_NOT_FOUND, as if it did not "
        "exist. Phones are always masked. Every request for a member is logged. "
        "Error codes: AUTH_REQUIRED, INVALID_TOKEN, TOKEN_EXPIRED, INVALID_CREDENTIALS (401); "
        "ACCOUNT_LOCKED, CLERK_DISABLED (403); MEMBER_NOT_FOUND (404); TAG_ARCHIVED (409); "
        "INVALID_PHONE, MEMBER_CODE_INVALID, UNKNOWN_TAG, TAG_ADD_REMOVE_OVERLAP, "
        "EXCLUSIVE_GROUP_CONFLICT, VALIDATION_ERROR (422); LOGIN_RATE_LIMITED, "
        "LOOKUP_RATE_LIMITED (429)."
    ),
)


@blp.route("/login")
class Login(MethodView):
    @blp.arguments(ClerkLoginInSchema())
    @blp.response(200, ClerkLoginSchema)
    def post(self, body: dict):
        """Log in: a bearer token valid for one shift (8 h), acting for the clerk's store"""
        result = auth.login(body["username"], body["password"], request.remote_addr or "")
        return {
            "token": result.token,
            "expires_at": result.expires_at,
            "store": result.store.code,
            "store_name": result.store.name,
            "clerk": result.clerk,
        }


@blp.route("/logout")
class Logout(MethodView):
    decorators = (clerk_required,)

    @blp.doc(security=CLERK_SECURITY)
    @blp.response(204)
    def post(self):
        """Log out: this token stops working at once"""
        auth.logout(g.clerk)


@blp.route("/me")
class Me(MethodView):
    decorators = (clerk_required,)

    @blp.doc(security=CLERK_SECURITY)
    @blp.response(200, ClerkMeSchema)
    def get(self):
        """The logged-in clerk, their store and their signed QR payload for new members"""
        clerk = auth.get_clerk(g.clerk.clerk_id)
        return {
            "id": clerk.id,
            "username": clerk.username,
            "name": clerk.name,
            "store": clerk.store.code,
            "store_name": clerk.store.name,
            "qr_payload": clerk_qr_payload(clerk.id),
        }


@blp.route("/tag-groups")
class TagCatalog(MethodView):
    decorators = (clerk_required,)

    @blp.doc(security=CLERK_SECURITY)
    @blp.response(200, ClerkCatalogSchema)
    def get(self):
        """The tag catalog to tap: live groups and tags in display order (one page)"""
        groups = [
            {"id": g_.id, "name": g_.name, "exclusive": g_.exclusive, "tags": live_tags(g_)}
            for g_ in active_catalog()
        ]
        return {"items": groups, "next_cursor": None}


@blp.route("/members/lookup")
class Lookup(MethodView):
    decorators = (clerk_required,)

    @blp.doc(security=CLERK_SECURITY)
    @blp.arguments(ClerkLookupInSchema())
    @blp.response(200, ClerkMemberViewSchema)
    def post(self, body: dict):
        """Look up the customer at the counter by phone or member code; grants 30 min access"""
        return services.lookup_member(
            g.clerk, phone=body.get("phone"), member_code=body.get("member_code")
        )


@blp.route("/members/<int:member_id>")
class MemberView(MethodView):
    decorators = (clerk_required,)

    @blp.doc(security=CLERK_SECURITY)
    @blp.response(200, ClerkMemberViewSchema)
    def get(self, member_id: int):
        """A member this clerk looked up within the last 30 minutes"""
        return services.view_member(g.clerk, member_id)


@blp.route("/members/<int:member_id>/tags")
class MemberTags(MethodView):
    decorators = (clerk_required,)

    @blp.doc(security=CLERK_SECURITY)
    @blp.arguments(ClerkTagChangeInSchema())
    @blp.response(200, ClerkMemberViewSchema)
    def post(self, body: dict, member_id: int):
        """Add and remove tags in one change; an exclusive group keeps one tag"""
        return services.tag_member(g.clerk, member_id, add=body["add"], remove=body["remove"])


@blp.route("/members/<int:member_id>/notes")
class MemberNotes(MethodView):
    decorators = (clerk_required,)

    @blp.doc(security=CLERK_SECURITY)
    @blp.arguments(ClerkNoteInSchema())
    @blp.response(201, ClerkNoteOutSchema)
    def post(self, body: dict, member_id: int):
        """Add a note (at most 500 characters; phone numbers in it are masked)"""
        return services.add_note(g.clerk, member_id, body["text"])
