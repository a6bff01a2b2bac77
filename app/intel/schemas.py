"""Request and response shapes for segments, campaigns, journeys and the lifecycle settings."""

from __future__ import annotations

import marshmallow as ma

from app.common.pagination import PageQuerySchema
from app.intel.models import STAGES

RULE_HELP = (
    'A rule: {"all": [rule…]}, {"any": [rule…]}, {"not": rule} or a condition '
    '{"field", "op", "value"}. Ops: =, !=, <, <=, >, >=, in (value a list). Fields: '
    "lifecycle (new|active|silent|sleeping|lost); r_score, f_score, m_score (1–5); rfm_label "
    "(e.g. 重要价值客户); tag_id; store (home store id: most visits in 12 months); last_store; "
    "city (the home store's city); join_store; join_channel (payment|pos|miniprogram|gift|import); "
    "join_date (YYYY-MM-DD, Shanghai day); days_since_last_purchase; purchase_count (lifetime); "
    "purchases_12m; payer_fen_12m; payer_fen_total; birthday_month (1–12); bought_sku (a SKU "
    "code on a till sale line) and bought_category (a category of the SKU catalog, "
    'PUT /admin/v1/skus), each with "within_days": a till sale within that many days '
    "(1–3650, default 30); has_unused_coupon (a coupon template id); "
    "marketing_opt_in (true|false); tier where the tier ladder is installed. Members never "
    "bought anything match no purchase condition. Only live members are counted."
)


class SettingsSchema(ma.Schema):
    honeymoon_days = ma.fields.Integer(
        validate=ma.validate.Range(0, 3650),
        metadata={"description": "a member with one purchase stays `new` this many days"},
    )
    active_days = ma.fields.Integer(
        validate=ma.validate.Range(0, 3650),
        metadata={"description": "`active`: last purchase at most this many days ago"},
    )
    silent_days = ma.fields.Integer(
        validate=ma.validate.Range(1, 3650), metadata={"description": "`silent` up to this"}
    )
    sleeping_days = ma.fields.Integer(
        validate=ma.validate.Range(2, 3650),
        metadata={"description": "`sleeping` up to this; beyond it `lost`"},
    )


class RfmSchema(ma.Schema):
    r = ma.fields.Integer()
    f = ma.fields.Integer()
    m = ma.fields.Integer()
    label = ma.fields.String()


class MemberStatsSchema(ma.Schema):
    member_id = ma.fields.Integer()
    joined_at = ma.fields.AwareDateTime()
    join_channel = ma.fields.String()
    first_purchase_at = ma.fields.AwareDateTime(allow_none=True)
    last_purchase_at = ma.fields.AwareDateTime(allow_none=True)
    last_store_id = ma.fields.Integer(allow_none=True)
    home_store_id = ma.fields.Integer(
        allow_none=True, metadata={"description": "most visits in the last 12 months"}
    )
    purchase_count = ma.fields.Integer()
    payer_fen_total = ma.fields.Integer()
    purchases_12m = ma.fields.Integer()
    payer_fen_12m = ma.fields.Integer()
    lifecycle = ma.fields.String(metadata={"description": " | ".join(STAGES)})
    lifecycle_since = ma.fields.AwareDateTime()
    rfm = ma.fields.Method("get_rfm", allow_none=True)

    def get_rfm(self, stats):  # type: ignore[no-untyped-def]
        from app.intel.services import rfm_of

        return rfm_of(stats)


class SegmentInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))
    rule = ma.fields.Dict(required=True, metadata={"description": RULE_HELP})


class RuleInSchema(ma.Schema):
    rule = ma.fields.Dict(required=True, metadata={"description": RULE_HELP})


class MaskedMemberSchema(ma.Schema):
    member_id = ma.fields.Integer()
    phone = ma.fields.String(allow_none=True, metadata={"description": "masked: 138****5678"})
    lifecycle = ma.fields.String()
    rfm = ma.fields.Nested(RfmSchema, allow_none=True)
    purchase_count = ma.fields.Integer()
    payer_fen_12m = ma.fields.Integer()
    last_purchase_at = ma.fields.AwareDateTime(allow_none=True)
    home_store_id = ma.fields.Integer(allow_none=True)


class SegmentSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    rule = ma.fields.Dict()
    created_by = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    member_count = ma.fields.Integer(metadata={"description": "counted now"})


class SegmentSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    rule = ma.fields.Dict()
    created_by = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class SegmentListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SegmentSummarySchema))
    next_cursor = ma.fields.String(allow_none=True)


class PreviewSchema(ma.Schema):
    member_count = ma.fields.Integer()
    members = ma.fields.List(ma.fields.Nested(MaskedMemberSchema))


class ExportInSchema(ma.Schema):
    reveal_phones = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "full phones in the file (HQ only; recorded on the export)"},
    )


class SegmentExportSchema(ma.Schema):
    id = ma.fields.Integer()
    segment_id = ma.fields.Integer()
    state = ma.fields.String(metadata={"description": "pending | done"})
    reveal_phones = ma.fields.Boolean()
    requested_by = ma.fields.String(allow_none=True)
    row_count = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    finished_at = ma.fields.AwareDateTime(allow_none=True)


ACTION_HELP = (
    '{"issue_coupon": template_id} | {"message": kind, "payload"?: {}} (kinds: promotion, '
    'nurture, birthday, …) | {"points": n, "reason": "…"}'
)


class CampaignInSchema(ma.Schema):
    segment_id = ma.fields.Integer(required=True)
    action = ma.fields.Dict(required=True, metadata={"description": ACTION_HELP})
    name = ma.fields.String(load_default=None, validate=ma.validate.Length(1, 100))
    dry_run = ma.fields.Boolean(
        load_default=False, metadata={"description": "only count the members; never runs"}
    )
    scheduled_at = ma.fields.AwareDateTime(
        load_default=None, metadata={"description": "when to run (default: now)"}
    )
    budget = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(0, 10_000_000),
        metadata={"description": "act on at most this many members (lowest ids first)"},
    )
    holdout_percent = ma.fields.Integer(
        load_default=0,
        validate=ma.validate.Range(0, 90),
        metadata={"description": "members set aside, not acted on, to measure the lift"},
    )
    attribution_days = ma.fields.Integer(load_default=14, validate=ma.validate.Range(1, 365))


class CountsSchema(ma.Schema):
    targeted = ma.fields.Integer(
        metadata={"description": "segment members taken (dry run: counted)"}
    )
    done = ma.fields.Integer()
    skipped = ma.fields.Integer()
    holdout = ma.fields.Integer()
    pending = ma.fields.Integer()
    skipped_by_reason = ma.fields.Dict(
        metadata={"description": "opted_out, budget, member_gone, OUT_OF_STOCK, …"}
    )


class CampaignSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    segment_id = ma.fields.Integer()
    action = ma.fields.Dict()
    state = ma.fields.String(
        metadata={"description": "dry_run | scheduled | running | done | cancelled"}
    )
    scheduled_at = ma.fields.AwareDateTime()
    budget = ma.fields.Integer(allow_none=True)
    holdout_percent = ma.fields.Integer()
    attribution_days = ma.fields.Integer()
    started_at = ma.fields.AwareDateTime(allow_none=True)
    finished_at = ma.fields.AwareDateTime(allow_none=True)
    counts = ma.fields.Nested(CountsSchema)
    attribution = ma.fields.Dict(
        allow_none=True,
        metadata={
            "description": "purchases (buyers, sales_fen, conversion) of recipients and of the "
            "hold-out within window_days of the start; coupons_redeemed for coupon campaigns"
        },
    )


class CampaignSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    segment_id = ma.fields.Integer()
    action = ma.fields.Dict()
    state = ma.fields.String()
    scheduled_at = ma.fields.AwareDateTime()
    started_at = ma.fields.AwareDateTime(allow_none=True)
    finished_at = ma.fields.AwareDateTime(allow_none=True)


class CampaignListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CampaignSummarySchema))
    next_cursor = ma.fields.String(allow_none=True)


class JourneyInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))
    trigger = ma.fields.String(
        required=True,
        metadata={"description": "joined | first_purchase | lifecycle:<stage>"},
    )
    steps = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        metadata={
            "description": '[{"day": n, "action": …, "conditions": ["no_repurchase", '
            '"opted_in"]}] in day order; opted_in is always checked'
        },
    )


class JourneyTemplateInSchema(ma.Schema):
    template = ma.fields.String(
        required=True, validate=ma.validate.OneOf(("new_customer", "honeymoon_60"))
    )
    coupon_template_id = ma.fields.Integer(required=True)


class JourneyPatchSchema(ma.Schema):
    active = ma.fields.Boolean(required=True)


class JourneySchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    trigger = ma.fields.String()
    steps = ma.fields.List(ma.fields.Dict())
    active = ma.fields.Boolean()
    template = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    counts = ma.fields.Dict(metadata={"description": "enrolled, and done/skipped per step"})


class ListQuerySchema(PageQuerySchema):
    pass
