"""The KPI report's query and answer."""

from __future__ import annotations

import marshmallow as ma

from app.reports.services import __doc__ as DEFINITIONS


class KpiQuerySchema(ma.Schema):
    from_ = ma.fields.Date(required=True, data_key="from", metadata={"description": "first day"})
    to = ma.fields.Date(required=True, metadata={"description": "last day (inclusive)"})
    store = ma.fields.String(
        load_default=None,
        metadata={"description": "store ids or codes, comma-separated (default: the whole brand)"},
    )


class ChannelsSchema(ma.Schema):
    payment = ma.fields.Integer()
    pos = ma.fields.Integer()
    miniprogram = ma.fields.Integer()
    gift = ma.fields.Integer()


class _Figures(ma.Schema):
    new_members = ma.fields.Integer()
    new_members_by_channel = ma.fields.Nested(ChannelsSchema)
    repurchase_rate = ma.fields.Float(allow_none=True)
    returning_sales_share = ma.fields.Float(allow_none=True)
    member_sales_share = ma.fields.Float(allow_none=True)
    coupon_redemption_online = ma.fields.Float(allow_none=True)
    coupon_redemption_offline = ma.fields.Float(allow_none=True)
    points_issued = ma.fields.Integer()
    points_spent = ma.fields.Integer()
    points_expired = ma.fields.Integer()
    sales_fen = ma.fields.Integer()
    member_sales_fen = ma.fields.Integer()
    returning_sales_fen = ma.fields.Integer()
    purchases = ma.fields.Integer()


class DaySchema(_Figures):
    date = ma.fields.String()
    active_members = ma.fields.Integer()


class StoreRowSchema(_Figures):
    store_id = ma.fields.Integer()
    code = ma.fields.String(allow_none=True)
    name = ma.fields.String(allow_none=True)
    member_days = ma.fields.Integer(metadata={"description": "active members summed over days"})


class ClerkRowSchema(ma.Schema):
    clerk_id = ma.fields.Integer()
    name = ma.fields.String(allow_none=True)
    store_id = ma.fields.Integer()
    new_members = ma.fields.Integer(
        metadata={"description": "members the clerk's QR code brought in"}
    )


class KpiSchema(ma.Schema):
    class Meta:
        ordered = True

    days = ma.fields.List(ma.fields.Nested(DaySchema), metadata={"description": DEFINITIONS})
    stores = ma.fields.List(ma.fields.Nested(StoreRowSchema))
    clerks = ma.fields.List(ma.fields.Nested(ClerkRowSchema))
