"""The shapes of till events (validated one by one, so a bad event never fails its batch)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma

from app.common.phone import is_valid_phone, normalize_phone

EVENT_ID = ma.validate.Regexp(
    r"^[A-Za-z0-9_.:/-]{1,64}$", error="1-64 letters, digits or _ . : / -"
)
MAX_LINES = 500
MAX_FEN = 10**12  # no amount field takes more (POS_MAX_SALE_FEN, smaller, is checked per event)
MAX_POINTS = 10**9
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class Moment(ma.fields.AwareDateTime):
    """An ISO 8601 time with offset in [2000-01-01, 2100-01-01): dates such as 9999-12-31 would
    overflow what expiries and time zones computed from them can represent."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            in_utc = moment.astimezone(UTC)
        except OverflowError:
            in_utc = None
        if in_utc is None or not EARLIEST <= in_utc < LATEST:
            raise ma.ValidationError("must be in the years 2000 to 2099")
        return moment


def _strict_int(minimum: int, **kwargs: Any) -> ma.fields.Integer:
    validators = [ma.validate.Range(min=minimum)]
    if "validate" in kwargs:
        validators.append(kwargs.pop("validate"))
    return ma.fields.Integer(strict=True, validate=validators, **kwargs)


class MemberRefSchema(ma.Schema):
    """Exactly one way to name the member."""

    member_id = ma.fields.Integer(
        strict=True,
        validate=ma.validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "from identify"},
    )
    phone = ma.fields.String(metadata={"description": "13812345678 or +8613812345678"})
    member_code = ma.fields.String(metadata={"description": "HY + 20 digits, from the app"})
    wechat_openid = ma.fields.String(validate=ma.validate.Length(1, 128))
    alipay_user_id = ma.fields.String(validate=ma.validate.Length(1, 128))

    @ma.validates_schema
    def _exactly_one(self, data: dict, **_: Any) -> None:
        if len(data) != 1:
            raise ma.ValidationError(
                "give exactly one of member_id, phone, member_code, wechat_openid, alipay_user_id"
            )
        if "phone" in data and not is_valid_phone(data["phone"]):
            raise ma.ValidationError("not a mainland mobile number", "phone")

    @ma.post_load
    def _normalize(self, data: dict, **_: Any) -> dict:
        if "phone" in data:
            data["phone"] = normalize_phone(data["phone"])
        return data


class LineSchema(ma.Schema):
    sku = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    qty = ma.fields.Decimal(
        required=True,
        places=3,
        validate=ma.validate.Range(min=0, min_inclusive=False),
        metadata={"description": "units; up to 3 decimals for weighed goods"},
    )
    amount_fen = _strict_int(0, required=True)


class SaleEventSchema(ma.Schema):
    type = ma.fields.String(required=True, validate=ma.validate.Equal("sale"))
    sale_id = ma.fields.String(required=True, validate=EVENT_ID)
    occurred_at = Moment(required=True)
    total_fen = _strict_int(0, required=True)
    paid_fen = _strict_int(0, required=True, metadata={"description": "money actually paid"})
    member = ma.fields.Nested(MemberRefSchema, allow_none=True, load_default=None)
    lines = ma.fields.List(
        ma.fields.Nested(LineSchema), required=True, validate=ma.validate.Length(max=MAX_LINES)
    )
    redemption_id = ma.fields.String(
        allow_none=True, load_default=None, validate=ma.validate.Length(1, 40)
    )

    @ma.validates_schema
    def _paid_within_total(self, data: dict, **_: Any) -> None:
        if data.get("paid_fen", 0) > data.get("total_fen", 0):
            raise ma.ValidationError("paid_fen cannot exceed total_fen", "paid_fen")


class ReturnEventSchema(ma.Schema):
    type = ma.fields.String(required=True, validate=ma.validate.Equal("return"))
    return_id = ma.fields.String(required=True, validate=EVENT_ID)
    sale_id = ma.fields.String(required=True, validate=EVENT_ID)
    occurred_at = Moment(required=True)
    refund_fen = _strict_int(1, required=True)
    lines = ma.fields.List(
        ma.fields.Nested(LineSchema),
        allow_none=True,
        load_default=None,
        validate=ma.validate.Length(max=MAX_LINES),
    )


def canonical_json(data: Any) -> str:
    """Stable text of a loaded event: same meaning, same text (offsets normalised to UTC)."""

    def default(value: Any) -> str:
        if hasattr(value, "astimezone"):
            from datetime import UTC

            return value.astimezone(UTC).isoformat()
        return str(value)

    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=default)


def content_hash(data: dict) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()
