"""Mini-program login and phone binding: platform calls first, then one member transaction.

One person can reach the brand through several WeChat appids (the mini-program, the official
account), each with its own openid. Identities are kept per appid; the ``unionid`` (the same for
every app of the brand's open-platform account) joins them into one member, whenever it becomes
known: at a mini-program login, or after a payment (``wxa/getpaidunionid`` / the official
account's user info). When two members turn out to hold the same person's identities they are
merged, as a phone binding merges them.
"""

from __future__ import annotations

import logging

from flask import current_app

from app.db import transaction
from app.errors import Conflict
from app.extensions import db
from app.members.binding import BindResult, bind_phone
from app.members.merge import lock_members, merge_members
from app.members.models import Member
from app.members.payers import Payer, enrol
from app.members.services import add_identity, find_by_identity, get_member, resolve_member
from app.platforms import alipay, wechat

log = logging.getLogger(__name__)


class _Raced(Exception):
    """A racing request merged one of the members between reading and locking."""


def _member_for(identities: list[tuple[str, str, str]], source: str) -> Member:
    member_id = transaction(lambda: enrol([Payer(tuple(identities), source)])[0])
    return get_member(member_id)


def wechat_login(code: str) -> Member:
    """``wx.login`` code → the member holding that openid (and unionid), created if new.

    The session key stays on the server (Redis), for the legacy ``encryptedData`` phone flow.
    """
    session = wechat.code_to_session(code)
    appid = current_app.config["WECHAT_APPID"]
    wechat.keep_session_key(appid, session["openid"], session.get("session_key"))
    identities = [("wechat_openid", appid, session["openid"])]
    if session.get("unionid"):
        identities.append(("wechat_unionid", "", session["unionid"]))
    member = _member_for(identities, "wechat_miniprogram")
    if session.get("unionid"):  # the openid and the unionid may be held by two members
        return join_unionid(member.id, session["unionid"], reason="unionid:login")
    return member


def join_unionid(member_id: int, unionid: str, *, reason: str) -> Member:
    """Give the member behind ``member_id`` the WeChat ``unionid``; when another member already
    holds it, the two are one person: merge them (the one holding a phone survives, else the
    older). Owns its transaction; returns the live member."""

    # a racing join (the same unionid added, a member merged meanwhile) runs it again
    return transaction(lambda: _join_once(member_id, unionid, reason), retry_on=(_Raced,))
    raise Conflict("unionid joining kept racing; try again", code="JOIN_BUSY")


def _join_once(member_id: int, unionid: str, reason: str) -> Member:
    member = resolve_member(member_id)
    holder = find_by_identity("wechat_unionid", unionid)
    if holder is None:
        add_identity(lock_members(member.id)[member.id], "wechat_unionid", unionid)
        db.session.flush()
        return member
    if holder.id == member.id:
        return member
    locked = lock_members(member.id, holder.id)
    first, second = locked.get(member.id), locked.get(holder.id)
    if first is None or second is None or "merged" in (first.status, second.status):
        raise _Raced
    if first.phone and second.phone and first.phone != second.phone:
        log.warning(
            "unionid shared by members %s and %s holding different phones: not merged",
            first.id,
            second.id,
        )
        return second
    survivor, absorbed = _survivor_of(first, second)
    merge_members(absorbed, survivor, reason=reason)
    return survivor


def _survivor_of(a: Member, b: Member) -> tuple[Member, Member]:
    """The phone is the person's key: its holder survives; otherwise the older member."""
    if bool(a.phone) != bool(b.phone):
        return (a, b) if a.phone else (b, a)
    return (a, b) if a.id < b.id else (b, a)


def alipay_login(auth_code: str) -> Member:
    """``my.getAuthCode`` code → the member holding that Alipay user id / open id."""
    token = alipay.oauth_token(auth_code)
    alipay.keep_user_token(token.get("user_id"), token.get("access_token"), token.get("expires_in"))
    identities = []
    if token.get("user_id"):
        identities.append(("alipay_user_id", "", token["user_id"]))
    if token.get("open_id"):
        identities.append(("alipay_open_id", current_app.config["ALIPAY_APP_ID"], token["open_id"]))
    return _member_for(identities, "alipay_miniprogram")


def bind_wechat_phone(member_id: int, code: str) -> BindResult:
    return bind_phone(member_id, wechat.phone_from_code(code), channel="wechat")


def bind_wechat_encrypted_phone(member_id: int, encrypted_data: str, iv: str) -> BindResult:
    """The legacy flow: ``encryptedData`` + ``iv`` from an older mini-program, decrypted with
    the session key this server kept from the member's last login."""
    appid = current_app.config["WECHAT_APPID"]
    openids = [
        i.external_id
        for i in resolve_member(member_id).identities
        if i.kind == "wechat_openid" and i.app == appid
    ]
    phone = wechat.phone_from_encrypted_data(appid, openids, encrypted_data, iv)
    return bind_phone(member_id, phone, channel="wechat")


def bind_alipay_phone(member_id: int, response: str, sign: str | None) -> BindResult:
    phone = alipay.phone_from_encrypted_response(response, sign)
    return bind_phone(member_id, phone, channel="alipay")
