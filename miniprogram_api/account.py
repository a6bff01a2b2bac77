"""Mini-program accounts: login with WeChat or Alipay, bind a phone, who am I, member code."""

from __future__ import annotations

import marshmallow as ma
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from app.common.phone import mask_phone
from app.engine.services import apply_for_member
from app.members import login
from app.members.codes import issue_member_code
from app.members.erasure import erase_member, export_member
from app.members.schemas import ErasureSchema
from app.members.services import resolve_member
from app.points.services import balance_of
from app.tiers.schemas import tier_field
from miniprogram_api.auth import (
    MEMBER_SECURITY,
    issue_member_token,
    member_required,
    revoke_member_token,
)

blp = Blueprint(
    "mp_account",
    __name__,
    url_prefix="/mp/v1",
    description=(
        "Mini-program accounts. Errors: `PLATFORM_DISABLED` (503), `WECHAT_CODE_INVALID` / "
        "`ALIPAY_CODE_INVALID` (401, code invalid or used), `PLATFORM_ERROR` (502), "
        "`WATERMARK_MISMATCH` (502 from the code flow, 422 from encrypted data: phone issued for "
        "another app), `PHONE_DATA_INVALID` (422), `WECHAT_SESSION_REQUIRED` (409: log in with "
        "wx.login again), `WECHAT_TOKEN_REJECTED` (502), `ALIPAY_SIGN_INVALID` (401), "
        "`ALIPAY_RESPONSE_INVALID` (422), `PHONE_ALREADY_BOUND` (409, the member has another "
        "phone), `INVALID_PHONE` (422), `AUTH_REQUIRED` / `INVALID_TOKEN` (401). Personal-data "
        "rights: `POST /mp/v1/logout` ends this token; `GET /mp/v1/me/export` is everything "
        "held about the member; `DELETE /mp/v1/me` erases the member's personal data (the "
        "balance is forfeited, unused coupons are voided, every token stops working)."
    ),
)


class MeSchema(ma.Schema):
    id = ma.fields.Integer()
    phone_masked = ma.fields.Function(lambda m: mask_phone(m.phone))
    points_balance = ma.fields.Function(lambda m: balance_of(m.id))
    tier = tier_field()
    name = ma.fields.String(allow_none=True)
    identity_kinds = ma.fields.Function(
        lambda m: sorted({i.kind for i in m.identities}),
        metadata={"description": "the doors this member came in by"},
    )
    created_at = ma.fields.AwareDateTime()


class LoginResultSchema(ma.Schema):
    token = ma.fields.String(metadata={"description": "member bearer token"})
    member = ma.fields.Nested(MeSchema)


class WeChatLoginSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=ma.validate.Length(1, 128))


class AlipayLoginSchema(ma.Schema):
    auth_code = ma.fields.String(required=True, validate=ma.validate.Length(1, 128))


class WeChatPhoneSchema(ma.Schema):
    code = ma.fields.String(
        validate=ma.validate.Length(1, 128),
        metadata={"description": "from the getPhoneNumber button (current flow)"},
    )
    encrypted_data = ma.fields.String(
        validate=ma.validate.Length(1, 4096),
        metadata={
            "description": "legacy flow: `encryptedData` from getPhoneNumber, decrypted with the "
            "session key this server kept from the member's last login (it never reaches the "
            "mini-program)"
        },
    )
    iv = ma.fields.String(
        validate=ma.validate.Length(1, 64), metadata={"description": "legacy flow: `iv`"}
    )

    @ma.validates_schema
    def one_flow(self, data: dict, **kwargs: object) -> None:
        legacy = "encrypted_data" in data or "iv" in data
        if "code" in data and legacy:
            raise ma.ValidationError("give code, or encrypted_data and iv, not both", "code")
        if not legacy and "code" not in data:
            raise ma.ValidationError("code (or encrypted_data and iv) is required", "code")
        if legacy and not ("encrypted_data" in data and "iv" in data):
            raise ma.ValidationError("encrypted_data and iv go together", "iv")


class AlipayPhoneSchema(ma.Schema):
    response = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 4096),
        metadata={"description": "encrypted `response` of my.getPhoneNumber"},
    )
    sign = ma.fields.String(load_default=None, validate=ma.validate.Length(1, 1024))


class PhoneBoundSchema(ma.Schema):
    member = ma.fields.Nested(MeSchema)
    merged = ma.fields.Boolean(
        metadata={
            "description": "true when another member already held this phone and absorbed this one"
        }
    )


class MemberCodeSchema(ma.Schema):
    code = ma.fields.String()
    expires_at = ma.fields.AwareDateTime()


def _phone_bound(result: login.BindResult) -> dict:
    return {"member": resolve_member(result.member_id), "merged": result.merged_from is not None}


@blp.route("/wechat/login")
class WeChatLogin(MethodView):
    @blp.arguments(WeChatLoginSchema())
    @blp.response(200, LoginResultSchema)
    def post(self, body: dict):
        """Log in with a `wx.login` code (creates the member for a new openid)"""
        member = login.wechat_login(body["code"])
        apply_for_member(member.id)  # a payment just made shows at once
        return {"token": issue_member_token(member.id, "wechat"), "member": member}


@blp.route("/alipay/login")
class AlipayLogin(MethodView):
    @blp.arguments(AlipayLoginSchema())
    @blp.response(200, LoginResultSchema)
    def post(self, body: dict):
        """Log in with a `my.getAuthCode` code (alipay.system.oauth.token)"""
        member = login.alipay_login(body["auth_code"])
        apply_for_member(member.id)
        return {"token": issue_member_token(member.id, "alipay"), "member": member}


@blp.route("/wechat/phone")
class WeChatPhone(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(WeChatPhoneSchema())
    @blp.response(200, PhoneBoundSchema)
    def post(self, body: dict):
        """Bind the phone from getPhoneNumber (a code, or legacy encrypted_data + iv); merges
        with a member holding it"""
        if "code" in body:
            return _phone_bound(login.bind_wechat_phone(g.member.id, body["code"]))
        return _phone_bound(
            login.bind_wechat_encrypted_phone(g.member.id, body["encrypted_data"], body["iv"])
        )


@blp.route("/alipay/phone")
class AlipayPhone(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.arguments(AlipayPhoneSchema())
    @blp.response(200, PhoneBoundSchema)
    def post(self, body: dict):
        """Bind the phone from my.getPhoneNumber; merges with a member holding it"""
        return _phone_bound(login.bind_alipay_phone(g.member.id, body["response"], body["sign"]))


@blp.route("/me")
class Me(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, MeSchema)
    def get(self):
        """The member behind the token (after any merge).

        Payments the member made that the engine has stored but not yet applied are applied
        first, so the balance includes a payment made a moment ago."""
        if apply_for_member(g.member.id):
            return resolve_member(g.member.id)
        return g.member

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, ErasureSchema)
    def delete(self):
        """Erase my personal data: phone, name, birthday, identities, clerk notes and tags go;
        points are forfeited, unused coupons voided; every token of mine stops working. The
        same phone can join again later as a new member."""
        return erase_member(g.member.id, requested_by="member")


class MemberExportSchema(ma.Schema):
    member = ma.fields.Dict(metadata={"description": "profile: phone, name, birthday, …"})
    identities = ma.fields.List(ma.fields.Dict())
    consents = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "policy_version, channel, at"}
    )
    points = ma.fields.Dict(metadata={"description": "balance and the whole ledger"})
    purchases = ma.fields.List(ma.fields.Dict())
    till_sales = ma.fields.List(ma.fields.Dict())
    coupons = ma.fields.List(ma.fields.Dict())
    tags = ma.fields.List(ma.fields.Dict())
    clerk_notes = ma.fields.List(ma.fields.Dict())
    attribution = ma.fields.Dict(allow_none=True)
    messages = ma.fields.List(ma.fields.Dict())
    exported_at = ma.fields.String()


@blp.route("/logout")
class Logout(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(204)
    def post(self):
        """Log out: this token stops working at once (other devices stay logged in)"""
        revoke_member_token(g.member_token, g.member.id)


@blp.route("/me/export")
class Export(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, MemberExportSchema)
    def get(self):
        """Everything held about me: profile, identities, consents, ledger, purchases, coupons,
        tags and notes by clerks, messages"""
        return export_member(g.member.id)


@blp.route("/member-code")
class MemberCode(MethodView):
    decorators = (member_required,)

    @blp.doc(security=MEMBER_SECURITY)
    @blp.response(200, MemberCodeSchema)
    def get(self):
        """A short-lived code for the till to scan"""
        code, expires_at = issue_member_code(g.member.id)
        return {"code": code, "expires_at": expires_at}
