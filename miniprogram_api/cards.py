"""The member's wallet cards: which are open, and asking for one ("add to wallet")."""

from __future__ import annotations

import marshmallow as ma
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.cards.services import cards_for, request_card
from app.db import transaction
from miniprogram_api.auth import MEMBER_SECURITY, member_required

blp = Blueprint(
    "mp_cards",
    __name__,
    url_prefix="/mp/v1",
    description=(
        "Member cards in the WeChat and Alipay wallets. A card is opened when a member joins "
        "(when the brand enables cards) or on request, and its points and level follow every "
        "change. Errors: `CARDS_DISABLED` (503), `CARD_PLATFORM_UNKNOWN` (404)."
    ),
)


class CardSchema(ma.Schema):
    platform = ma.fields.String(metadata={"description": "`wechat` or `alipay`"})
    card_no = ma.fields.String(
        metadata={"description": "membership number: the WeChat card code for wx.addCard"}
    )
    template_id = ma.fields.String(metadata={"description": "WeChat card_id / Alipay template"})
    state = ma.fields.String(metadata={"description": "`opening`, `active`, `deleted`, `retired`"})
    level = ma.fields.String(allow_none=True)
    synced_points = ma.fields.Integer(
        allow_none=True, metadata={"description": "the points the platform last accepted"}
    )


class CardListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CardSchema))


@blp.route("/cards")
class Cards(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, CardListSchema)
    def get(self):
        """The member's cards on each platform"""
        return {"items": cards_for(g.member.id)}


@blp.route("/cards/<platform>")
class CardRequest(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(202, CardSchema)
    def post(self, platform: str):
        """Ask for a card on this platform; opening is delivered in the background"""
        member_id = g.member.id

        def attempt():
            card = request_card(member_id, platform)
            return {
                "platform": card.platform,
                "card_no": card.card_no,
                "template_id": card.template_id,
                "state": card.state,
                "level": card.level,
                "synced_points": card.synced_points,
            }

        return transaction(attempt)
