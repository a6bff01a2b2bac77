"""Mini-program points: the balance with upcoming expiries, and the ledger."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.points.schemas import LedgerQuerySchema, MemberLedgerSchema, PointsSummarySchema
from app.points.statements import ledger_page, points_summary
from miniprogram_api.auth import MEMBER_SECURITY, member_required

blp = Blueprint(
    "mp_points",
    __name__,
    url_prefix="/mp/v1/points",
    description=(
        "The member's points. Error codes: AUTH_REQUIRED, INVALID_TOKEN, TOKEN_EXPIRED (401), "
        "INVALID_CURSOR (422)."
    ),
)


@blp.route("")
class Points(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, PointsSummarySchema)
    def get(self):
        """My points balance and when which of them expire"""
        return points_summary(g.member.id)


@blp.route("/ledger")
class Ledger(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(LedgerQuerySchema(), location="query")
    @blp.response(200, MemberLedgerSchema)
    def get(self, query: dict):
        """My points history, newest first"""
        items, cursor = ledger_page(g.member.id, limit=query["limit"], cursor=query["cursor"])
        return {"items": items, "next_cursor": cursor}
