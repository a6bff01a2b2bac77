"""``POST /mp/v1/attribution``: the member presents the clerk QR payload they came in through."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.clerks.attribution import attribute_member
from app.clerks.schemas import AttributionInSchema, AttributionSchema
from miniprogram_api.auth import MEMBER_SECURITY, member_required

blp = Blueprint(
    "mp_attribution",
    __name__,
    url_prefix="/mp/v1",
    description=(
        "Attribution of new members to the clerk whose QR code they scanned. A member who "
        "joined in the last 24 h is attributed to that clerk and store; the first attribution "
        "wins. Binding a phone is not joining: when the phone merges this member into an older "
        "one, the attribution is dropped. Error codes: INVALID_ATTRIBUTION_PAYLOAD (422), "
        "AUTH_REQUIRED, INVALID_TOKEN, TOKEN_EXPIRED (401)."
    ),
)


@blp.route("/attribution")
class Attribution(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(AttributionInSchema())
    @blp.response(200, AttributionSchema)
    def post(self, body: dict):
        """Attribute me to the clerk whose QR code I came in through"""
        result = attribute_member(g.member.id, body["payload"])
        attribution = result.attribution
        return {
            "status": result.status,
            "store": attribution and attribution.store.code,
            "attributed_at": attribution and attribution.attributed_at,
        }
