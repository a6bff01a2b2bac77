"""Request and response shapes of ``/pos/v1`` (event shapes live in ``app.pos.schemas``)."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma

from app.pos.events import MAX_EVENTS
from app.pos.schemas import EVENT_ID
from app.tiers.schemas import MemberTierViewSchema


class ActivateInSchema(ma.Schema):
    activation_code = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))


class ActivatedSchema(ma.Schema):
    terminal_id = ma.fields.String()
    store = ma.fields.String(metadata={"description": "store code"})
    secret = ma.fields.String(metadata={"description": "HMAC key; returned once, keep it safe"})


class IdentifyInSchema(ma.Schema):
    phone = ma.fields.String(metadata={"description": "13812345678 or +8613812345678"})
    member_code = ma.fields.String(
        metadata={"description": "HY + 20 digits (GET /mp/v1/member-code)"}
    )
    register = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "with a phone: enrol a new member if the phone is unknown"},
    )

    @ma.validates_schema
    def _one_way(self, data: dict, **_: Any) -> None:
        if ("phone" in data) == ("member_code" in data):
            raise ma.ValidationError("give exactly one of phone, member_code")


class IdentifiedSchema(ma.Schema):
    member_id = ma.fields.Integer()
    phone_masked = ma.fields.String(allow_none=True)
    points_balance = ma.fields.Integer()
    tier = ma.fields.Nested(MemberTierViewSchema, allow_none=True)
    coupons = ma.fields.List(ma.fields.Dict())
    registered = ma.fields.Boolean(metadata={"description": "true if enrolled by this call"})


class EventsInSchema(ma.Schema):
    events = ma.fields.List(
        ma.fields.Raw(allow_none=True),  # a null event is rejected on its own, like any bad one
        required=True,
        validate=ma.validate.Length(max=MAX_EVENTS),
        metadata={"description": "sale and return events (PosSaleEvent, PosReturnEvent)"},
    )


class EventResultSchema(ma.Schema):
    id = ma.fields.Raw(metadata={"description": "the event's sale_id or return_id"})
    type = ma.fields.String()
    status = ma.fields.String(
        metadata={"description": "accepted | duplicate | conflict | rejected | parked"}
    )
    error = ma.fields.Dict(metadata={"description": "for rejected and conflict: code, message"})
    member_id = ma.fields.Integer(allow_none=True)
    points_earned = ma.fields.Integer()
    points_taken = ma.fields.Integer()
    points_returned = ma.fields.Integer(metadata={"description": "redeemed points given back"})
    returns_applied = ma.fields.List(ma.fields.String())
    state = ma.fields.String(metadata={"description": "for a duplicate return"})
    ticket = ma.fields.String(metadata={"description": "vendor endpoints: the ticket's id"})


class EventsOutSchema(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(EventResultSchema))


class RedemptionInSchema(ma.Schema):
    sale_id = ma.fields.String(required=True, validate=EVENT_ID)
    member_id = ma.fields.Integer(required=True, strict=True)
    coupons = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(1, 64)),
        load_default=list,
        validate=ma.validate.Length(max=20),
    )
    points = ma.fields.Integer(load_default=0, strict=True, validate=ma.validate.Range(min=0))
    total_fen = ma.fields.Integer(
        load_default=None,
        strict=True,
        validate=ma.validate.Range(min=0),
        metadata={
            "description": "order total; required with coupons (thresholds), caps the discount"
        },
    )


class RedemptionSchema(ma.Schema):
    id = ma.fields.String()
    sale_id = ma.fields.String()
    member_id = ma.fields.Integer()
    discount_fen = ma.fields.Integer()
    points = ma.fields.Integer()
    coupons = ma.fields.Function(lambda r: json.loads(r.coupons_json))
    state = ma.fields.String(metadata={"description": "held | captured | released | expired"})
    expires_at = ma.fields.AwareDateTime()


class TicketsInSchema(ma.Schema):
    tickets = ma.fields.List(
        ma.fields.Dict(), required=True, validate=ma.validate.Length(max=MAX_EVENTS // 2)
    )
