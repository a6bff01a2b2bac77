"""HQ endpoints for tiers: the ladder, a member's tier and HQ's override."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.admin.auth import ADMIN_SECURITY, admin_required
from app.db import transaction
from app.members.services import resolve_member
from app.tiers import services
from app.tiers.schemas import (
    LadderInSchema,
    LadderSchema,
    MemberTierDetailSchema,
    OverrideInSchema,
)

blp = Blueprint(
    "admin_tiers",
    __name__,
    url_prefix="/admin/v1",
    description=(
        "HQ: member tiers (会员等级). A purchase that crosses a threshold upgrades at once (it "
        "earns at the old tier's multiplier, the next at the new); a tier is kept "
        "`keep_months` from reaching it; the nightly review steps members down at most "
        "`review_max_steps` tiers; refunds lower the basis but never demote before the review. "
        "Error codes: INVALID_LADDER, TEMPLATE_NOT_FOUND, TIER_NOT_FOUND, INVALID_EXPIRY, "
        "VALIDATION_ERROR (422), TIERS_NOT_CONFIGURED, MEMBER_NOT_FOUND (404)."
    ),
)


@blp.route("/tiers")
class Ladder(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, LadderSchema)
    def get(self):
        """The tier ladder, with the progress of the re-evaluation after its last change"""
        return services.ladder_view()

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(LadderInSchema())
    @blp.response(200, LadderSchema)
    def put(self, body: dict):
        """Replace the whole ladder; members are re-evaluated by a background job (no one is
        demoted before their keep period ends)"""
        services.change_ladder(actor=g.admin_name, **body)
        return services.ladder_view()


@blp.route("/members/<int:member_id>/tier")
class MemberTierView(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, MemberTierDetailSchema)
    def get(self, member_id: int):
        """A member's tier, its basis, keep period, any override and the tier history"""
        return services.member_tier_detail(resolve_member(member_id).id)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(OverrideInSchema())
    @blp.response(200, MemberTierDetailSchema)
    def put(self, body: dict, member_id: int):
        """Set a member's tier by hand until `expires_at` (`code: null` ends it); audited"""

        def attempt() -> dict:
            return services.set_override(member_id, actor=g.admin_name, **body)

        return transaction(attempt)
