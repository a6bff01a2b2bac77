"""HQ endpoints for points: a member's ledger, manual adjustments, earn multiplier rules."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.admin.auth import ADMIN_SECURITY, admin_required, scoped_admin_required
from app.operators.authz import require_member
from app.points import multipliers
from app.points.adjustments import adjust_points
from app.points.schemas import (
    AdjustmentHeadersSchema,
    AdjustmentInSchema,
    AdminEntrySchema,
    AdminLedgerSchema,
    LedgerQuerySchema,
    MultiplierRuleInSchema,
    MultiplierRuleListSchema,
    MultiplierRuleSchema,
)
from app.points.services import balance_of
from app.points.statements import ledger_page

blp = Blueprint(
    "admin_points",
    __name__,
    url_prefix="/admin/v1",
    description=(
        "HQ: points ledgers, manual adjustments and earn multipliers. Error codes: "
        "MEMBER_NOT_FOUND (404), MEMBER_MERGED (409, adjust the survivor), "
        "INSUFFICIENT_POINTS (409, a negative adjustment larger than the balance), "
        "IDEMPOTENCY_KEY_REUSED (409, same Idempotency-Key with other content), "
        "INVALID_POINTS, REASON_REQUIRED, INVALID_MULTIPLIER, INVALID_PERIOD (422), "
        "STORE_NOT_FOUND (404), INVALID_CURSOR (422)."
    ),
)


@blp.route("/members/<int:member_id>/points/ledger")
class MemberLedger(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(LedgerQuerySchema(), location="query")
    @blp.response(200, AdminLedgerSchema)
    def get(self, query: dict, member_id: int):
        """A member's points ledger, newest first, with the current balance"""
        require_member(member_id)
        items, cursor = ledger_page(member_id, limit=query["limit"], cursor=query["cursor"])
        return {"balance": balance_of(member_id), "items": items, "next_cursor": cursor}


@blp.route("/members/<int:member_id>/points/adjustments")
class Adjustments(MethodView):
    decorators = (scoped_admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(AdjustmentHeadersSchema(), location="headers")
    @blp.arguments(AdjustmentInSchema())
    @blp.response(201, AdminEntrySchema)
    def post(self, headers: dict, body: dict, member_id: int):
        """Adjust a member's points by hand (signed; the reason and the admin are recorded)"""
        require_member(member_id, write=True)
        result = adjust_points(
            member_id,
            body["points"],
            reason=body["reason"],
            actor=g.admin_name,
            idempotency_key=headers["idempotency_key"],
        )
        return result.entry


@blp.route("/points/multiplier-rules")
class MultiplierRules(MethodView):
    decorators = (admin_required,)

    @blp.doc(security=ADMIN_SECURITY)
    @blp.arguments(MultiplierRuleInSchema())
    @blp.response(201, MultiplierRuleSchema)
    def post(self, body: dict):
        """Create an earn multiplier (a store and a period; optionally one day of each month)"""
        return multipliers.create_rule(
            name=body["name"],
            percent=body["percent"],
            starts_at=body["starts_at"],
            ends_at=body["ends_at"],
            store_code=body["store"],
            day_of_month=body["day_of_month"],
            actor=g.admin_name,
        )

    @blp.doc(security=ADMIN_SECURITY)
    @blp.response(200, MultiplierRuleListSchema)
    def get(self):
        """List earn multiplier rules, newest first"""
        return {"items": multipliers.list_rules()}
