"""Request and response shapes for the coupon endpoints (admin and mini-program)."""

from __future__ import annotations

import marshmallow as ma

from app.common.pagination import PageQuerySchema
from app.coupons.gifting import shown_state
from app.coupons.models import COUPON_STATES, TEMPLATE_KINDS

_positive = ma.validate.Range(min=1)
_fen = ma.validate.Range(min=0)


class TemplateInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(TEMPLATE_KINDS))
    value_fen = ma.fields.Integer(
        load_default=None, validate=_positive, metadata={"description": "cash_off: amount off"}
    )
    threshold_fen = ma.fields.Integer(
        load_default=None, validate=_fen, metadata={"description": "minimum order total (满)"}
    )
    percent_off = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(1, 99),
        metadata={"description": "discount: 15 means 15% off (8.5折)"},
    )
    cap_fen = ma.fields.Integer(
        load_default=None, validate=_positive, metadata={"description": "discount: at most"}
    )
    gift_sku = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(1, 64),
        metadata={"description": "gift: the SKU given free"},
    )
    valid_days = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(1, 3650),
        metadata={"description": "days after issue; or give valid_until (a fixed window)"},
    )
    valid_from = ma.fields.AwareDateTime(load_default=None)
    valid_until = ma.fields.AwareDateTime(load_default=None)
    giftable = ma.fields.Boolean(load_default=False)
    regift_allowed = ma.fields.Boolean(
        load_default=False, metadata={"description": "a received coupon may be gifted again"}
    )
    points_price = ma.fields.Integer(
        load_default=None, validate=_positive, metadata={"description": "exchangeable for points"}
    )
    total_stock = ma.fields.Integer(load_default=None, validate=_positive)
    per_member_limit = ma.fields.Integer(load_default=None, validate=_positive)
    store_codes = ma.fields.List(
        ma.fields.String(),
        load_default=list,
        metadata={"description": "stores where it applies; empty: every store"},
    )
    welcome = ma.fields.Boolean(
        load_default=False, metadata={"description": "issued once to each new member"}
    )


class TemplateSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String()
    value_fen = ma.fields.Integer(allow_none=True)
    threshold_fen = ma.fields.Integer(allow_none=True)
    percent_off = ma.fields.Integer(allow_none=True)
    cap_fen = ma.fields.Integer(allow_none=True)
    gift_sku = ma.fields.String(allow_none=True)
    valid_days = ma.fields.Integer(allow_none=True)
    valid_from = ma.fields.AwareDateTime(allow_none=True)
    valid_until = ma.fields.AwareDateTime(allow_none=True)
    giftable = ma.fields.Boolean()
    regift_allowed = ma.fields.Boolean()
    points_price = ma.fields.Integer(allow_none=True)
    total_stock = ma.fields.Integer(allow_none=True)
    issued_count = ma.fields.Integer()
    per_member_limit = ma.fields.Integer(allow_none=True)
    store_codes = ma.fields.Function(
        lambda t: [link.store.code for link in t.stores],
        metadata={"description": "stores where it applies; empty: every store"},
    )
    welcome = ma.fields.Boolean()
    status = ma.fields.String(metadata={"description": "active | paused"})
    created_at = ma.fields.AwareDateTime()


class TemplateListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TemplateSchema))
    next_cursor = ma.fields.String(allow_none=True)


class IssueInSchema(ma.Schema):
    member_ids = ma.fields.List(
        ma.fields.Integer(), required=True, validate=ma.validate.Length(1, 1000)
    )


class CouponOfferSchema(ma.Schema):
    """What a coupon gives, without its code or owner (shown on a gift link)."""

    template_id = ma.fields.Integer()
    name = ma.fields.Function(lambda c: c.template.name)
    kind = ma.fields.Function(lambda c: c.template.kind)
    value_fen = ma.fields.Function(lambda c: c.template.value_fen)
    threshold_fen = ma.fields.Function(lambda c: c.template.threshold_fen)
    percent_off = ma.fields.Function(lambda c: c.template.percent_off)
    cap_fen = ma.fields.Function(lambda c: c.template.cap_fen)
    gift_sku = ma.fields.Function(lambda c: c.template.gift_sku)
    expires_at = ma.fields.AwareDateTime()


class CouponSchema(CouponOfferSchema):
    code = ma.fields.String()
    state = ma.fields.String(metadata={"description": " | ".join(COUPON_STATES)})
    owner_id = ma.fields.Integer()
    source = ma.fields.String(metadata={"description": "admin | welcome | exchange"})
    received_as_gift = ma.fields.Function(lambda c: c.gift_count > 0)
    issued_at = ma.fields.AwareDateTime()
    valid_from = ma.fields.AwareDateTime()
    redeemed_at = ma.fields.AwareDateTime(allow_none=True)


class IssueResultSchema(ma.Schema):
    member_id = ma.fields.Integer(metadata={"description": "as requested"})
    status = ma.fields.Function(lambda r: "issued" if r.coupon is not None else "skipped")
    code = ma.fields.String(
        allow_none=True,
        metadata={"description": "why skipped: MEMBER_NOT_FOUND | COUPON_LIMIT_REACHED"},
    )
    coupon_code = ma.fields.Function(lambda r: r.coupon.code if r.coupon is not None else None)


class IssuedSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CouponSchema))
    skipped = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "members not issued: {member_id, code}"}
    )
    results = ma.fields.List(
        ma.fields.Nested(IssueResultSchema),
        metadata={"description": "one per requested id, in request order"},
    )


class TemplateUpdateSchema(TemplateInSchema):
    """Every field optional; see PATCH /coupon-templates/{id} for what may change when."""


class MallTemplateSchema(ma.Schema):
    """A template as the points mall shows it."""

    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String()
    value_fen = ma.fields.Integer(allow_none=True)
    threshold_fen = ma.fields.Integer(allow_none=True)
    percent_off = ma.fields.Integer(allow_none=True)
    cap_fen = ma.fields.Integer(allow_none=True)
    gift_sku = ma.fields.String(allow_none=True)
    valid_days = ma.fields.Integer(allow_none=True)
    valid_until = ma.fields.AwareDateTime(allow_none=True)
    giftable = ma.fields.Boolean()
    points_price = ma.fields.Integer()
    stock_left = ma.fields.Function(
        lambda t: None if t.total_stock is None else t.total_stock - t.issued_count,
        metadata={"description": "null: unlimited"},
    )
    store_codes = ma.fields.Function(
        lambda t: [link.store.code for link in t.stores],
        metadata={"description": "stores where it applies; empty: every store"},
    )


class ExchangeableTemplateListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MallTemplateSchema))
    balance = ma.fields.Integer(metadata={"description": "the member's points balance"})


class EventSchema(ma.Schema):
    kind = ma.fields.String()
    from_state = ma.fields.String(allow_none=True)
    to_state = ma.fields.String()
    owner_id = ma.fields.Integer()
    actor = ma.fields.String()
    channel = ma.fields.String()
    store_id = ma.fields.Integer(allow_none=True)
    ref = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class CouponDetailSchema(CouponSchema):
    events = ma.fields.List(ma.fields.Nested(EventSchema))


class VoidInSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(1, 160))


class StoreCountSchema(ma.Schema):
    store_id = ma.fields.Integer()
    store_code = ma.fields.String()
    store_name = ma.fields.String()
    redeemed = ma.fields.Integer()


class ReportSchema(ma.Schema):
    template_id = ma.fields.Integer()
    name = ma.fields.String()
    issued = ma.fields.Integer()
    gifted = ma.fields.Integer(metadata={"description": "gift links created"})
    claimed = ma.fields.Integer(metadata={"description": "gifts claimed by a friend"})
    redeemed = ma.fields.Integer()
    expired = ma.fields.Integer()
    void = ma.fields.Integer()
    redemption_rate = ma.fields.Float(metadata={"description": "redeemed / issued"})
    redeemed_online = ma.fields.Integer()
    redeemed_offline = ma.fields.Integer(metadata={"description": "redeemed at a store"})
    by_store = ma.fields.List(ma.fields.Nested(StoreCountSchema))
    states = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())


class MemberCouponSchema(CouponSchema):
    gift_token = ma.fields.Function(
        lambda c: c.pending_gift.token if c.pending_gift else None,
        metadata={"description": "the pending gift link, while gifting"},
    )
    gift_expires_at = ma.fields.Function(
        lambda c: c.pending_gift.expires_at.isoformat() if c.pending_gift else None
    )


class MemberCouponListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MemberCouponSchema))
    next_cursor = ma.fields.String(allow_none=True)


class MemberCouponQuerySchema(PageQuerySchema):
    state = ma.fields.String(load_default=None, validate=ma.validate.OneOf(COUPON_STATES))


class GiftInSchema(ma.Schema):
    expires_in_hours = ma.fields.Integer(
        load_default=24,
        validate=ma.validate.Range(1, 168),
        metadata={"description": "link lifetime (default 24 h; never past the coupon's expiry)"},
    )


class GiftCreatedSchema(ma.Schema):
    gift_token = ma.fields.String()
    expires_at = ma.fields.AwareDateTime()
    code = ma.fields.String()


class GiftPreviewSchema(ma.Schema):
    state = ma.fields.Function(
        lambda gift: shown_state(gift),
        metadata={"description": "pending | claimed | cancelled | expired"},
    )
    expires_at = ma.fields.AwareDateTime()
    coupon = ma.fields.Nested(
        lambda: CouponOfferSchema(), metadata={"description": "what the friend gets"}
    )


class ExchangeInSchema(ma.Schema):
    request_id = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(1, 64),
        metadata={"description": "a repeat with the same id returns the first coupon"},
    )


class ExchangedSchema(ma.Schema):
    coupon = ma.fields.Nested(CouponSchema)
    points_spent = ma.fields.Integer()
    points_balance = ma.fields.Integer(metadata={"description": "after the exchange"})


class ExpiringQuerySchema(PageQuerySchema):
    within_days = ma.fields.Integer(load_default=3, validate=ma.validate.Range(1, 30))


class CouponListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CouponSchema))
    next_cursor = ma.fields.String(allow_none=True)
