from __future__ import annotations

import marshmallow as ma

from app.clerks.services import NOTE_MAX_LENGTH
from app.common.pagination import PageQuerySchema
from app.tiers.schemas import MemberTierViewSchema


class ClerkLoginInSchema(ma.Schema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    password = ma.fields.String(required=True, load_only=True, validate=ma.validate.Length(1, 128))


class ClerkBriefSchema(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    name = ma.fields.String()


class ClerkLoginSchema(ma.Schema):
    token = ma.fields.String(metadata={"description": "Bearer token for /clerk/v1"})
    expires_at = ma.fields.AwareDateTime()
    store = ma.fields.String(metadata={"description": "store code; the token acts only for it"})
    store_name = ma.fields.String()
    clerk = ma.fields.Nested(ClerkBriefSchema)


class ClerkMeSchema(ClerkBriefSchema):
    store = ma.fields.String()
    store_name = ma.fields.String()
    qr_payload = ma.fields.String(
        metadata={"description": "signed; the mini-program posts it to /mp/v1/attribution"}
    )


class ClerkCatalogTagSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String()


class ClerkCatalogGroupSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    exclusive = ma.fields.Boolean()
    tags = ma.fields.List(ma.fields.Nested(ClerkCatalogTagSchema))


class ClerkCatalogSchema(ma.Schema):
    items = ma.fields.List(
        ma.fields.Nested(ClerkCatalogGroupSchema),
        metadata={"description": "live groups and tags, in display order"},
    )
    next_cursor = ma.fields.String(allow_none=True, metadata={"description": "always null"})


class ClerkLookupInSchema(ma.Schema):
    phone = ma.fields.String(validate=ma.validate.Length(1, 20))
    member_code = ma.fields.String(validate=ma.validate.Length(1, 40))

    @ma.validates_schema
    def _exactly_one(self, data: dict, **_: object) -> None:
        if ("phone" in data) == ("member_code" in data):
            raise ma.ValidationError("give phone or member_code, not both", "phone")


class ClerkMemberTagSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String()
    group_id = ma.fields.Integer()
    group_name = ma.fields.Function(lambda t: t.group.name)


class ClerkNoteSchema(ma.Schema):
    id = ma.fields.Integer()
    text = ma.fields.String()
    clerk_name = ma.fields.String()
    store = ma.fields.String(metadata={"description": "code of the store the note was made in"})
    created_at = ma.fields.AwareDateTime()


class ClerkStorePurchasesSchema(ma.Schema):
    days = ma.fields.Integer(metadata={"description": "the window summarised"})
    count = ma.fields.Integer()
    net_paid_fen = ma.fields.Integer(metadata={"description": "paid minus refunded"})
    last_at = ma.fields.AwareDateTime(allow_none=True)


class ClerkMemberViewSchema(ma.Schema):
    id = ma.fields.Integer()
    phone_masked = ma.fields.String(allow_none=True, metadata={"example": "138****5678"})
    name = ma.fields.String(allow_none=True)
    member_since = ma.fields.AwareDateTime()
    last_visit_at = ma.fields.AwareDateTime(allow_none=True)
    points_balance = ma.fields.Integer()
    tier = ma.fields.Nested(MemberTierViewSchema, allow_none=True)
    coupons_available = ma.fields.Integer(
        metadata={"description": "present once the coupons feature is connected"}
    )
    store_purchases = ma.fields.Nested(
        ClerkStorePurchasesSchema, metadata={"description": "this store's recent purchases"}
    )
    tags = ma.fields.List(ma.fields.Nested(ClerkMemberTagSchema))
    notes = ma.fields.List(
        ma.fields.Nested(ClerkNoteSchema), metadata={"description": "newest first"}
    )
    access_expires_at = ma.fields.AwareDateTime(
        metadata={"description": "this clerk's access ends then; look the member up again"}
    )


class ClerkTagChangeInSchema(ma.Schema):
    add = ma.fields.List(
        ma.fields.Integer(), load_default=list, validate=ma.validate.Length(max=50)
    )
    remove = ma.fields.List(
        ma.fields.Integer(), load_default=list, validate=ma.validate.Length(max=50)
    )


def _not_blank(text: str) -> None:
    if not text.strip():
        raise ma.ValidationError("blank")


class ClerkNoteInSchema(ma.Schema):
    text = ma.fields.String(
        required=True,
        validate=ma.validate.And(
            ma.validate.Length(1, NOTE_MAX_LENGTH),
            _not_blank,
        ),
    )


class ClerkNoteOutSchema(ma.Schema):
    id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    text = ma.fields.String()
    created_at = ma.fields.AwareDateTime()


class AccessLogQuerySchema(PageQuerySchema):
    member_id = ma.fields.Integer(load_default=None)
    clerk_id = ma.fields.Integer(load_default=None)


class AccessLogEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    clerk_id = ma.fields.Integer()
    store_id = ma.fields.Integer()
    member_id = ma.fields.Integer(allow_none=True, metadata={"description": "the id asked for"})
    resolved_member_id = ma.fields.Integer(allow_none=True)
    action = ma.fields.String(metadata={"description": "lookup | view | tag | note"})
    outcome = ma.fields.String(metadata={"description": "granted | ok | denied | not_found"})
    created_at = ma.fields.AwareDateTime()


class AccessLogSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AccessLogEntrySchema))
    next_cursor = ma.fields.String(allow_none=True)


class ClerkNotesQuerySchema(PageQuerySchema):
    member_id = ma.fields.Integer(required=True)


class AdminClerkNoteSchema(ClerkNoteOutSchema):
    clerk_id = ma.fields.Integer()
    store_id = ma.fields.Integer()


class AdminClerkNotesSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AdminClerkNoteSchema))
    next_cursor = ma.fields.String(allow_none=True)


class AttributionReportQuerySchema(ma.Schema):
    since = ma.fields.AwareDateTime(required=True)
    until = ma.fields.AwareDateTime(required=True)


class AttributionReportRowSchema(ma.Schema):
    store = ma.fields.String()
    store_name = ma.fields.String()
    clerk_id = ma.fields.Integer()
    clerk_name = ma.fields.String()
    new_members = ma.fields.Integer()


class AttributionReportSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AttributionReportRowSchema))


class ClerkQrPayloadSchema(ma.Schema):
    clerk_id = ma.fields.Integer()
    qr_payload = ma.fields.String()


class ClerkSessionsRevokedSchema(ma.Schema):
    revoked = ma.fields.Integer(metadata={"description": "sessions ended"})


class AttributionInSchema(ma.Schema):
    payload = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))


class AttributionSchema(ma.Schema):
    status = ma.fields.String(
        metadata={"description": "attributed | already_attributed | not_eligible"}
    )
    store = ma.fields.String(allow_none=True)
    attributed_at = ma.fields.AwareDateTime(allow_none=True)
