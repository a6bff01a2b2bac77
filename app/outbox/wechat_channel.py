"""WeChat subscribe messages (订阅消息) through the WeChat API client and its shared token.

Which template each message kind uses, and how the payload fills the template's fields, is the
brand's configuration (``WECHAT_SUBSCRIBE_TEMPLATES``); kinds without a template are skipped.
The delivery id travels in the page link (``?hy_msg=…``): a receiver that keeps it (and the
brand's click tracking) can tell a retry from a new message. WeChat itself does not deduplicate,
so a sender killed between WeChat's answer and our record of it sends that one message again.
"""

from __future__ import annotations

import json
import string
from typing import Any

import requests
from flask import current_app
from sqlalchemy import select
from wechatpy.exceptions import WeChatClientException

from app.errors import DomainError
from app.extensions import db
from app.members.models import MemberIdentity
from app.members.services import resolve_member
from app.outbox.channels import DeliveryError, DeliverySkipped, NoRecipient
from app.outbox.models import OutboxMessage

RETRYABLE_ERRCODES = {-1, 40001, 42001, 45009}  # busy, token invalid/expired, rate limit
REFUSED_ERRCODES = {43101}  # the member did not (or no longer) accept this template


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, payload: dict[str, Any]) -> str:
    """``"{points} 积分"`` filled from the payload; unknown names render empty."""
    return string.Formatter().vformat(template, (), _Blank(payload))


class WeChatSubscribeChannel:
    name = "wechat_subscribe"

    def send(self, message: OutboxMessage, delivery_id: str) -> None:
        spec = self._template(message.kind)
        openid = self._openid(message.member_id)
        data = {
            field: {"value": render(text, message.payload)[:20]}
            for field, text in spec.get("data", {}).items()
        }
        page = spec.get("page", "pages/index/index")
        page += ("&" if "?" in page else "?") + f"hy_msg={delivery_id}"
        from app.platforms.wechat import wechat_client

        try:
            client = wechat_client()
            client.wxa.send_subscribe_message(openid, spec["template_id"], data, page)
        except WeChatClientException as exc:
            if exc.errcode in REFUSED_ERRCODES:
                raise DeliverySkipped(f"member refused the subscription ({exc.errcode})") from exc
            raise DeliveryError(
                f"WeChat error {exc.errcode}", retryable=exc.errcode in RETRYABLE_ERRCODES
            ) from exc
        except requests.RequestException as exc:
            raise DeliveryError(
                f"WeChat unreachable: {type(exc).__name__}", retryable=True
            ) from exc
        except DomainError as exc:  # platform disabled, token refresh busy
            raise DeliveryError(exc.code, retryable=exc.status >= 500) from exc

    @staticmethod
    def _template(kind: str) -> dict[str, Any]:
        raw = current_app.config.get("WECHAT_SUBSCRIBE_TEMPLATES") or "{}"
        spec = json.loads(raw).get(kind)
        if not spec:
            raise DeliverySkipped(f"no subscribe template configured for {kind}")
        return spec

    @staticmethod
    def _openid(member_id: int) -> str:
        live = resolve_member(member_id)
        openid = db.session.scalars(
            select(MemberIdentity.external_id)
            .where(
                MemberIdentity.member_id == live.id,
                MemberIdentity.kind == "wechat_openid",
                MemberIdentity.app == (current_app.config.get("WECHAT_APPID") or ""),
            )
            .order_by(MemberIdentity.id)
        ).first()
        if openid is None:
            raise NoRecipient("member has no WeChat openid for this mini-program")
        return openid
