"""Mini-program coupon endpoints: my coupons, gifting to friends, claiming, points exchange."""

from __future__ import annotations

from datetime import timedelta

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.coupons import services
from app.coupons.errors import describe_codes
from app.coupons.queries import exchangeable_templates, member_coupons
from app.coupons.schemas import (
    CouponSchema,
    ExchangeableTemplateListSchema,
    ExchangedSchema,
    ExchangeInSchema,
    GiftCreatedSchema,
    GiftInSchema,
    GiftPreviewSchema,
    MemberCouponListSchema,
    MemberCouponQuerySchema,
)
from app.points.services import balance_of
from miniprogram_api.auth import MEMBER_SECURITY, member_required

blp = Blueprint(
    "mp_coupons",
    __name__,
    url_prefix="/mp/v1",
    description="The member's coupons; gift links a friend claims; exchanging points for "
    "coupons.\n\nError codes:\n"
    + describe_codes(
        "COUPON_NOT_FOUND",
        "COUPON_NOT_YOURS",
        "COUPON_EXPIRED",
        "COUPON_ALREADY_USED",
        "COUPON_NOT_AVAILABLE",
        "COUPON_NOT_GIFTABLE",
        "COUPON_REGIFT_NOT_ALLOWED",
        "GIFT_NOT_FOUND",
        "GIFT_ALREADY_CLAIMED",
        "GIFT_CANCELLED",
        "GIFT_EXPIRED",
        "GIFT_OWN_CLAIM",
        "GIFT_NOT_YOURS",
        "TEMPLATE_NOT_FOUND",
        "TEMPLATE_PAUSED",
        "TEMPLATE_ENDED",
        "TEMPLATE_NOT_EXCHANGEABLE",
        "OUT_OF_STOCK",
        "COUPON_LIMIT_REACHED",
        "INSUFFICIENT_POINTS",
        "EXCHANGE_REQUEST_REUSED",
    ),
)


@blp.route("/coupons")
class MyCoupons(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(MemberCouponQuerySchema(), location="query")
    @blp.response(200, MemberCouponListSchema)
    def get(self, query: dict):
        """My coupons, newest first (filter by state)"""
        coupons, cursor = member_coupons(
            g.member.id, state=query["state"], limit=query["limit"], cursor=query["cursor"]
        )
        return {"items": coupons, "next_cursor": cursor}


@blp.route("/coupons/<string:code>/gift")
class GiftCoupon(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(GiftInSchema(), required=False)
    @blp.response(201, GiftCreatedSchema)
    def post(self, body: dict, code: str):
        """Make a gift link for one of my coupons (default expiry 24 h)"""
        ttl = timedelta(hours=(body or {}).get("expires_in_hours", 24))
        gift, coupon = services.create_gift(code, g.member.id, ttl=ttl)
        return {"gift_token": gift.token, "expires_at": gift.expires_at, "code": coupon.code}


@blp.route("/gifts/<string:gift_token>/claim")
class ClaimGift(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, CouponSchema)
    def post(self, gift_token: str):
        """Claim a friend's gift: the coupon becomes mine, with its original validity"""
        return services.claim_gift(gift_token, g.member.id)


@blp.route("/gifts/<string:gift_token>")
class Gift(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, GiftPreviewSchema)
    def get(self, gift_token: str):
        """What a gift link offers, for the friend's claim page (no giver details)"""
        return services.get_gift(gift_token)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, CouponSchema)
    def delete(self, gift_token: str):
        """Cancel my gift before it is claimed: the coupon is mine again"""
        return services.cancel_gift(gift_token, g.member.id)


@blp.route("/coupon-templates")
class Mall(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, ExchangeableTemplateListSchema)
    def get(self):
        """The points mall: coupon templates exchangeable for points now, cheapest first"""
        return {"items": exchangeable_templates(), "balance": balance_of(g.member.id)}


@blp.route("/coupon-templates/<int:template_id>/exchange")
class Exchange(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(ExchangeInSchema(), required=False)
    @blp.response(201, ExchangedSchema)
    def post(self, body: dict, template_id: int):
        """Spend points for a coupon (the template's points_price)"""
        coupon = services.exchange_for_points(
            template_id, g.member.id, request_id=(body or {}).get("request_id")
        )
        return {
            "coupon": coupon,
            "points_spent": coupon.template.points_price,
            "points_balance": balance_of(g.member.id),
        }
