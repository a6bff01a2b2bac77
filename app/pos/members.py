"""Finding (or creating) the member a till names: by id, phone, member code or payer identity.

A payer identity is pay-as-membership at the till: an unknown WeChat openid or Alipay user id
becomes a new member holding it. WeChat openids are per app: they are looked up under the
configured ``WECHAT_APPID`` (the mini-program and the store's WeChat Pay share one appid), or
under ``""`` when it is unset. An unknown phone at the till registers a member too.
"""

from __future__ import annotations

from flask import current_app

from app.errors import NotFound
from app.members.codes import resolve_member_code
from app.members.models import Member
from app.members.services import create_member, find_by_identity, find_by_phone, resolve_member

_PAYER_KINDS = {"wechat_openid": "pos_wechat_pay", "alipay_user_id": "pos_alipay"}


def wechat_app() -> str:
    return current_app.config.get("WECHAT_APPID") or ""


def member_for_phone(phone: str, *, store_id: int, register: bool) -> tuple[Member | None, bool]:
    """``(member, created)``; with ``register`` an unknown phone becomes a new member."""
    member = find_by_phone(phone)
    if member is not None or not register:
        return member, False
    return create_member(source="pos", phone=phone, store_id=store_id), True


def _not_erased(member: Member) -> Member:
    if member.status == "erased":  # its personal data is gone: it earns and spends nothing
        raise NotFound("member not found", code="MEMBER_NOT_FOUND")
    return member


def member_for_ref(ref: dict, *, store_id: int) -> Member:
    """The live member behind one ``member`` object of a sale event (created if a payer/phone)."""
    if "member_id" in ref:
        return _not_erased(resolve_member(ref["member_id"]))
    if "member_code" in ref:
        return _not_erased(resolve_member(resolve_member_code(ref["member_code"])))
    if "phone" in ref:
        member, _ = member_for_phone(ref["phone"], store_id=store_id, register=True)
        assert member is not None
        return member
    for kind, source in _PAYER_KINDS.items():
        if kind in ref:
            app = wechat_app() if kind == "wechat_openid" else ""
            member = find_by_identity(kind, ref[kind], app)
            if member is None:
                member = create_member(
                    source=source, identities=[(kind, app, ref[kind])], store_id=store_id
                )
            return member
    raise ValueError(f"unsupported member reference {sorted(ref)}")
