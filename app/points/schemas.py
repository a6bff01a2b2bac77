from __future__ import annotations

import marshmallow as ma

from app.common.pagination import PageQuerySchema

MAX_ADJUSTMENT = 10_000_000


class LedgerQuerySchema(PageQuerySchema):
    pass


class MemberEntrySchema(ma.Schema):
    """A ledger entry as the member sees it."""

    id = ma.fields.Integer()
    points = ma.fields.Integer(metadata={"description": "signed"})
    balance_after = ma.fields.Integer()
    kind = ma.fields.String(
        metadata={
            "description": "earn, redeem, hold, release, clawback, return_of_redeemed, expire, "
            "adjust, import, merge_in, merge_out, exchange"
        }
    )
    ref_type = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class AdminEntrySchema(MemberEntrySchema):
    """A ledger entry with everything HQ may see."""

    member_id = ma.fields.Integer()
    ref_id = ma.fields.String(allow_none=True)
    store_id = ma.fields.Integer(allow_none=True)
    actor = ma.fields.String(allow_none=True)
    idempotency_key = ma.fields.String()


class MemberLedgerSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MemberEntrySchema))
    next_cursor = ma.fields.String(allow_none=True)


class AdminLedgerSchema(ma.Schema):
    balance = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(AdminEntrySchema))
    next_cursor = ma.fields.String(allow_none=True)


class ExpiringSchema(ma.Schema):
    points = ma.fields.Integer()
    expires_at = ma.fields.AwareDateTime()


class PointsSummarySchema(ma.Schema):
    balance = ma.fields.Integer(metadata={"description": "negative while the member owes points"})
    expiring = ma.fields.List(
        ma.fields.Nested(ExpiringSchema),
        metadata={"description": "points left per upcoming expiry, soonest first"},
    )


class AdjustmentInSchema(ma.Schema):
    points = ma.fields.Integer(
        required=True,
        strict=True,
        # bounded, so that no number of adjustments can push a balance past its column
        validate=ma.validate.Range(-MAX_ADJUSTMENT, MAX_ADJUSTMENT),
        metadata={"description": f"signed, non-zero, at most {MAX_ADJUSTMENT:,} either way"},
    )
    reason = ma.fields.String(required=True, validate=ma.validate.Length(1, 255))


class AdjustmentHeadersSchema(ma.Schema):
    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key",
        load_default=None,
        validate=ma.validate.Length(1, 128),
        metadata={"description": "a repeat with the same key returns the first adjustment"},
    )


class MultiplierRuleInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))
    percent = ma.fields.Integer(
        required=True, strict=True, metadata={"description": "200 = double points (101..1000)"}
    )
    store = ma.fields.String(
        load_default=None, metadata={"description": "store code; omitted: every store"}
    )
    starts_at = ma.fields.AwareDateTime(required=True)
    ends_at = ma.fields.AwareDateTime(required=True, metadata={"description": "exclusive"})
    day_of_month = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(1, 31),
        metadata={"description": "member day: only on this local day of each month"},
    )


class MultiplierRuleSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    percent = ma.fields.Integer()
    store_id = ma.fields.Integer(allow_none=True)
    starts_at = ma.fields.AwareDateTime()
    ends_at = ma.fields.AwareDateTime()
    day_of_month = ma.fields.Integer(allow_none=True)
    active = ma.fields.Boolean()
    created_by = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class MultiplierRuleListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MultiplierRuleSchema))
