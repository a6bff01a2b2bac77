"""Member representations for the admin API."""

from __future__ import annotations

from datetime import date

import marshmallow as ma

from app.intel.services import lifecycle_of, member_stats, rfm_of
from app.members.models import IDENTITY_KINDS
from app.operators.authz import shown_phone
from app.points.services import balance_of
from app.tiers.schemas import tier_field


class IdentitySchema(ma.Schema):
    kind = ma.fields.String()
    app = ma.fields.String(metadata={"description": "WeChat appid for per-app openids, else empty"})
    external_id = ma.fields.Function(
        lambda i: shown_phone(i.external_id) if i.kind == "phone" else i.external_id,
        metadata={"description": "a phone identity is masked as the phone is"},
    )


class MemberSchema(ma.Schema):
    id = ma.fields.Integer()
    phone = ma.fields.Function(
        lambda m: shown_phone(m.phone),
        allow_none=True,
        metadata={"description": "whole for the hq_admin role, masked (138****5678) otherwise"},
    )
    name = ma.fields.String(allow_none=True)
    birthday = ma.fields.Date(allow_none=True)
    status = ma.fields.String(metadata={"description": "active | merged | erased"})
    source = ma.fields.String()
    identities = ma.fields.List(ma.fields.Nested(IdentitySchema))
    points_balance = ma.fields.Function(lambda m: balance_of(m.id))
    tier = tier_field()
    merged_into = ma.fields.Integer(
        attribute="merged_into_id",
        allow_none=True,
        metadata={"description": "set when this member was merged into another"},
    )
    created_at = ma.fields.AwareDateTime()
    lifecycle = ma.fields.Function(
        lambda m: lifecycle_of(m.id),
        metadata={"description": "new | active | silent | sleeping | lost"},
    )
    rfm = ma.fields.Function(
        lambda m: rfm_of(member_stats(m.id)),
        allow_none=True,
        metadata={"description": "{r, f, m, label} scored nightly; null when not scored"},
    )


class ErasureSchema(ma.Schema):
    member_id = ma.fields.Integer()
    requested_by = ma.fields.String(metadata={"description": "member | admin"})
    actor = ma.fields.String(allow_none=True)
    points_forfeited = ma.fields.Integer()
    coupons_voided = ma.fields.Integer()
    erased_at = ma.fields.AwareDateTime()


class MemberListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MemberSchema))


class MemberImportSchema(ma.Schema):
    phone = ma.fields.String(required=True, metadata={"example": "13812345678"})
    name = ma.fields.String(load_default=None, validate=ma.validate.Length(max=100))
    birthday = ma.fields.Date(
        load_default=None,
        validate=ma.validate.Range(min=date(1900, 1, 1), max=date(2099, 12, 31)),
    )
    points = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(-10_000_000, 10_000_000),
        metadata={"description": "balance carried over from the old system"},
    )


class MemberLookupSchema(ma.Schema):
    phone = ma.fields.String(load_default=None)
    identity_kind = ma.fields.String(load_default=None, validate=ma.validate.OneOf(IDENTITY_KINDS))
    external_id = ma.fields.String(load_default=None, validate=ma.validate.Length(1, 128))


class MemberPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MemberSchema))
    next_cursor = ma.fields.String(allow_none=True)


class GiftSchema(ma.Schema):
    coupon_code = ma.fields.Function(lambda gift: gift.coupon.code)
    template_id = ma.fields.Integer()
    template_name = ma.fields.Function(lambda gift: gift.coupon.template.name)
    giver_id = ma.fields.Integer()
    claimed_by_id = ma.fields.Integer(allow_none=True)
    state = ma.fields.String(metadata={"description": "pending | claimed | cancelled | returned"})
    created_at = ma.fields.AwareDateTime()
    expires_at = ma.fields.AwareDateTime()
    settled_at = ma.fields.AwareDateTime(allow_none=True)


class GiftListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(GiftSchema))
    next_cursor = ma.fields.String(allow_none=True)
