"""Tier representations: the ladder, a member's tier in every member view, overrides."""

from __future__ import annotations

import marshmallow as ma

from app.tiers.models import BASES

CODE = ma.validate.Regexp(r"^[A-Za-z0-9_\-]{1,32}$", error="1-32 letters, digits, _ or -")


class TierInSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=CODE, metadata={"example": "VIP"})
    name = ma.fields.String(
        required=True, validate=ma.validate.Length(1, 64), metadata={"example": "VIP会员"}
    )
    rank = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(1, 100),
        metadata={"description": "1 = lowest; default: the order of thresholds"},
    )
    threshold = ma.fields.Integer(
        required=True,
        validate=ma.validate.Range(0, 10**15),
        metadata={
            "description": "entry threshold in the ladder's basis unit (fen, purchases "
            "or growth points); the lowest tier has 0"
        },
    )
    earn_multiplier_pct = ma.fields.Integer(
        load_default=100,
        validate=ma.validate.Range(100, 1000),
        metadata={"description": "integer percent; 150 earns 1.5× (a +50% bonus)"},
    )
    upgrade_coupon_template_id = ma.fields.Integer(
        load_default=None, allow_none=True, metadata={"description": "gift on reaching the tier"}
    )
    birthday_coupon_template_id = ma.fields.Integer(
        load_default=None, allow_none=True, metadata={"description": "the tier's birthday gift"}
    )


class TierSchema(TierInSchema):
    rank = ma.fields.Integer()


class LadderInSchema(ma.Schema):
    basis = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(BASES),
        metadata={
            "description": "payer_fen_12m: the payer's own money over the last 12 calendar "
            "months; purchases_12m: purchases not fully refunded over the same window; "
            "growth: growth value (成长值), earned alongside points, never spent"
        },
    )
    keep_months = ma.fields.Integer(
        load_default=12,
        validate=ma.validate.Range(1, 120),
        metadata={"description": "a tier is kept this long from reaching it (保级)"},
    )
    review_max_steps = ma.fields.Integer(
        load_default=1,
        validate=ma.validate.Range(1, 100),
        metadata={"description": "tiers a review may step a member down at once"},
    )
    tiers = ma.fields.List(
        ma.fields.Nested(TierInSchema), required=True, validate=ma.validate.Length(1, 20)
    )


class ReevaluationSchema(ma.Schema):
    state = ma.fields.String(metadata={"description": "pending | running | done"})
    done = ma.fields.Integer(metadata={"description": "members re-evaluated so far"})
    total = ma.fields.Integer()
    finished_at = ma.fields.AwareDateTime(allow_none=True)


class LadderSchema(ma.Schema):
    basis = ma.fields.String(allow_none=True)
    keep_months = ma.fields.Integer()
    review_max_steps = ma.fields.Integer()
    version = ma.fields.Integer()
    updated_at = ma.fields.AwareDateTime()
    updated_by = ma.fields.String(allow_none=True)
    tiers = ma.fields.List(ma.fields.Nested(TierSchema))
    reevaluation = ma.fields.Nested(ReevaluationSchema, allow_none=True)


class NextTierSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    threshold = ma.fields.Integer()
    needed = ma.fields.Integer(metadata={"description": "basis still needed to reach it"})


class MemberTierViewSchema(ma.Schema):
    """``tier`` in every member view (null when no ladder is set)."""

    code = ma.fields.String()
    name = ma.fields.String()
    basis = ma.fields.String(metadata={"description": "what ``value`` and ``needed`` count"})
    value = ma.fields.Integer(metadata={"description": "the member's current basis"})
    keep_until = ma.fields.AwareDateTime(
        allow_none=True, metadata={"description": "the tier is kept at least until then"}
    )
    next = ma.fields.Nested(NextTierSchema, allow_none=True)


def tier_field(getter: object = None) -> ma.fields.Field:
    """The ``tier`` field for a member schema whose objects are members (``m.id``)."""
    from app.tiers.services import tier_view

    return ma.fields.Function(
        getter or (lambda m: tier_view(m.id)),
        metadata={
            "description": "the member's tier {code, name, basis, value, keep_until, next: "
            "{code, name, threshold, needed}}; null until a tier ladder is set",
            "type": "object",
            "nullable": True,
        },
    )


class OverrideInSchema(ma.Schema):
    code = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "null ends the override"}
    )
    reason = ma.fields.String(required=True, validate=ma.validate.Length(1, 255))
    expires_at = ma.fields.AwareDateTime(
        load_default=None, metadata={"description": "required with a code"}
    )


class OverrideSchema(ma.Schema):
    code = ma.fields.String()
    expires_at = ma.fields.AwareDateTime()
    reason = ma.fields.String()
    by = ma.fields.String()


class TierChangeSchema(ma.Schema):
    old_code = ma.fields.String(allow_none=True)
    new_code = ma.fields.String()
    reason = ma.fields.String(
        metadata={"description": "upgrade | review | ladder | manual | merge"}
    )
    actor = ma.fields.String(allow_none=True)
    note = ma.fields.String(allow_none=True)
    expires_at = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class MemberTierDetailSchema(ma.Schema):
    member_id = ma.fields.Integer()
    tier = ma.fields.Nested(MemberTierViewSchema)
    earned_code = ma.fields.String(metadata={"description": "the tier the basis keeps"})
    reached_at = ma.fields.AwareDateTime(allow_none=True)
    keep_until = ma.fields.AwareDateTime(allow_none=True)
    payer_fen_12m = ma.fields.Integer()
    purchases_12m = ma.fields.Integer()
    growth = ma.fields.Integer()
    override = ma.fields.Nested(OverrideSchema, allow_none=True)
    history = ma.fields.List(ma.fields.Nested(TierChangeSchema))
