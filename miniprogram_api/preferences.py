"""Member preferences: birthday (set once) and marketing messages opt-out / opt-in."""

from __future__ import annotations

import marshmallow as ma
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.members import preferences
from miniprogram_api.auth import MEMBER_SECURITY, member_required

blp = Blueprint(
    "mp_preferences",
    __name__,
    url_prefix="/mp/v1/me",
    description="The member's own settings. Errors: `BIRTHDAY_ALREADY_SET` (409: a birthday "
    "is set once), `INVALID_BIRTHDAY` (422).",
)


class BirthdayInSchema(ma.Schema):
    birthday = ma.fields.Date(required=True, metadata={"example": "1995-06-18"})


class BirthdaySchema(ma.Schema):
    birthday = ma.fields.Date()


class MarketingInSchema(ma.Schema):
    opt_out = ma.fields.Boolean(
        required=True,
        metadata={"description": "true: only transactional messages (points, coupons held)"},
    )


class MarketingSchema(ma.Schema):
    marketing_opt_out = ma.fields.Boolean()


@blp.route("/birthday")
class Birthday(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(BirthdayInSchema())
    @blp.response(200, BirthdaySchema)
    def put(self, body: dict):
        """Set the birthday (once; a birthday coupon arrives on the day each year)"""
        return preferences.set_birthday(g.member.id, body["birthday"])


@blp.route("/marketing")
class Marketing(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(MarketingInSchema())
    @blp.response(200, MarketingSchema)
    def put(self, body: dict):
        """Opt out of (or back into) marketing messages"""
        return preferences.set_marketing_opt_out(g.member.id, body["opt_out"])
