"""Mini-program login and phone binding: platform calls first, then one member transaction."""

from __future__ import annotations

from flask import current_app

from app.db import transaction
from app.members.binding import BindResult, bind_phone
from app.members.models import Member
from app.members.payers import Payer, enrol
from app.members.services import get_member
from app.platforms import alipay, wechat


def _member_for(identities: list[tuple[str, str, str]], source: str) -> Member:
    member_id = transaction(lambda: enrol([Payer(tuple(identities), source)])[0])
    return get_member(member_id)


def wechat_login(code: str) -> Member:
    """``wx.login`` code → the member holding that openid (and unionid), created if new."""
    session = wechat.code_to_session(code)
    identities = [("wechat_openid", current_app.config["WECHAT_APPID"], session["openid"])]
    if session.get("unionid"):
        identities.append(("wechat_unionid", "", session["unionid"]))
    return _member_for(identities, "wechat_miniprogram")


def alipay_login(auth_code: str) -> Member:
    """``my.getAuthCode`` code → the member holding that Alipay user id / open id."""
    token = alipay.oauth_token(auth_code)
    identities = []
    if token.get("user_id"):
        identities.append(("alipay_user_id", "", token["user_id"]))
    if token.get("open_id"):
        identities.append(("alipay_open_id", current_app.config["ALIPAY_APP_ID"], token["open_id"]))
    return _member_for(identities, "alipay_miniprogram")


def bind_wechat_phone(member_id: int, code: str) -> BindResult:
    return bind_phone(member_id, wechat.phone_from_code(code), channel="wechat")


def bind_alipay_phone(member_id: int, response: str, sign: str | None) -> BindResult:
    phone = alipay.phone_from_encrypted_response(response, sign)
    return bind_phone(member_id, phone, channel="alipay")
