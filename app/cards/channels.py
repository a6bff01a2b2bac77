"""Delivering card changes to WeChat (card API, through wechatpy) and Alipay (python-alipay-sdk).

Every delivery reads the card and the member's balance when it is sent, so what the platform
shows is the current state whichever delivery lands last:

- WeChat: ``card/membercard/activate`` opens (``init_bonus`` = points,
  ``init_custom_field_value1`` = level); ``card/membercard/updateuser`` syncs with ``bonus``
  (the absolute total shown on the card) *and* ``add_bonus`` + ``record_bonus`` (the change,
  for WeChat's notice) — WeChat's own recipe for idempotent retries; ``card/code/unavailable``
  retires a merged-away card.
- Alipay: ``alipay.marketing.card.open`` (``out_serial_no`` makes a retry return the same
  card), ``alipay.marketing.card.update`` (``point``, ``level``), ``alipay.marketing.card.delete``.

A sync for a card still opening is skipped: the opening, when it succeeds, carries the balance.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from sqlalchemy import select
from wechatpy.exceptions import WeChatClientException

from app.cards.models import MemberCard
from app.common.clock import SHANGHAI, utcnow
from app.db import unit_of_work
from app.errors import DomainError
from app.extensions import db
from app.members.models import MemberIdentity
from app.members.services import resolve_member
from app.outbox.channels import DeliveryError, DeliverySkipped, NoRecipient
from app.outbox.models import OutboxMessage
from app.points.services import balance_of

log = logging.getLogger(__name__)
RETRYABLE_WECHAT = {-1, 45009}
VALID_UNTIL = "2099-12-31 23:59:59"


def _card(message: OutboxMessage) -> MemberCard:
    card = db.session.get(MemberCard, message.payload.get("card"))
    if card is None:
        raise DeliverySkipped("card not found")
    db.session.refresh(card)
    if message.kind == "card_retire":
        return card
    if card.state in ("deleted", "retired"):
        raise DeliverySkipped(f"card {card.state}")
    if message.kind == "card_sync" and card.state == "opening":
        raise DeliverySkipped("card still opening: its opening carries the balance")
    return card


def _points(card: MemberCard) -> int:
    return balance_of(resolve_member(card.member_id).id)


def _mark(card_id: int, **values: Any) -> None:
    with unit_of_work():
        card = db.session.get(MemberCard, card_id)
        if card is not None:
            for name, value in values.items():
                setattr(card, name, value)
            card.updated_at = utcnow()


class WeChatCardChannel:
    name = "wechat_card"

    def send(self, message: OutboxMessage, delivery_id: str) -> None:
        from app.platforms.settings import is_enabled
        from app.platforms.wechat import wechat_client

        card = _card(message)
        card_id, code, points, level = card.id, card.card_no, _points(card), card.level or ""
        template = card.template_id
        db.session.rollback()  # no transaction held open across the platform call
        try:
            client = wechat_client("oa" if is_enabled("wechat_official_account") else "miniprogram")
            if message.kind == "card_open":
                client.card.activate_membercard(
                    code,
                    code,
                    card_id=template,
                    init_bonus=points,
                    init_bonus_record="开卡同步积分",
                    init_custom_field_value1=level,
                )
                _mark(card_id, state="active", synced_points=points)
                log.info("WeChat card %s opened: %d points, level %r", card_id, points, level)
            elif message.kind == "card_sync":
                result = client.card.update_membercard(
                    code,
                    template,
                    bonus=points,
                    add_bonus=int(message.payload.get("add_bonus") or 0),
                    record_bonus=message.payload.get("record") or "积分变动",
                    custom_field_value1=level,
                    notify_optional={"is_notify_bonus": bool(message.payload.get("add_bonus"))},
                )
                _mark(card_id, synced_points=int(result.get("result_bonus", points)))
                log.info("WeChat card %s synced: %d points, level %r", card_id, points, level)
            elif message.kind == "card_retire":
                client.card.invalid_code(code, template)
            else:
                raise DeliverySkipped(f"unknown card delivery {message.kind}")
        except WeChatClientException as exc:
            if exc.errcode == 40056:  # invalid code: the member removed the card meanwhile
                raise DeliverySkipped("WeChat no longer knows this card code") from exc
            raise DeliveryError(
                f"WeChat error {exc.errcode}", retryable=exc.errcode in RETRYABLE_WECHAT
            ) from exc
        except requests.RequestException as exc:
            raise DeliveryError(
                f"WeChat unreachable: {type(exc).__name__}", retryable=True
            ) from exc
        except DomainError as exc:  # token refused twice, platform disabled
            raise DeliveryError(exc.code, retryable=exc.status >= 500) from exc


class AlipayCardChannel:
    name = "alipay_card"

    def send(self, message: OutboxMessage, delivery_id: str) -> None:
        card = _card(message)
        card_id, points, level = card.id, _points(card), card.level or ""
        biz_card_no, card_no, template = card.platform_card_no, card.card_no, card.template_id
        user_id = db.session.scalar(
            select(MemberIdentity.external_id).where(
                MemberIdentity.member_id == resolve_member(card.member_id).id,
                MemberIdentity.kind == "alipay_user_id",
            )
        )
        db.session.rollback()
        now = utcnow().astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
        if message.kind == "card_open":
            from app.platforms.alipay import user_token

            auth_token = user_token(user_id) if user_id else None
            if not auth_token:
                raise NoRecipient("no Alipay authorisation for this member: they log in again")
            result = _alipay_call(
                "alipay.marketing.card.open",
                {
                    "out_serial_no": f"hy-card-open-{card_id}",
                    "card_template_id": template,
                    "card_user_info": {"user_uni_id": user_id, "user_uni_id_type": "UID"},
                    "card_ext_info": {
                        "external_card_no": card_no,
                        "open_date": now,
                        "valid_date": VALID_UNTIL,
                        "level": level,
                        "point": str(points),
                    },
                    "member_ext_info": {},
                },
                auth_token=auth_token,
            )
            opened = (result.get("card_info") or {}).get("biz_card_no")
            if not opened:
                raise DeliveryError("Alipay opened no card", retryable=True)
            _mark(card_id, state="active", platform_card_no=opened, synced_points=points)
            log.info("Alipay card %s opened: %d points, level %r", card_id, points, level)
        elif message.kind == "card_sync":
            if not biz_card_no:
                raise DeliverySkipped("card not opened on Alipay")
            _alipay_call(
                "alipay.marketing.card.update",
                {
                    "target_card_no": biz_card_no,
                    "target_card_no_type": "BIZ_CARD",
                    "occur_time": now,
                    "card_info": {"point": str(points), "level": level},
                },
            )
            _mark(card_id, synced_points=points)
            log.info("Alipay card %s synced: %d points, level %r", card_id, points, level)
        elif message.kind == "card_retire":
            if biz_card_no:
                _alipay_call(
                    "alipay.marketing.card.delete",
                    {
                        "out_serial_no": f"hy-card-retire-{card_id}",
                        "target_card_no": biz_card_no,
                        "target_card_no_type": "BIZ_CARD",
                        "reason_code": "USER_UNBUND",
                    },
                )
        else:
            raise DeliverySkipped(f"unknown card delivery {message.kind}")


def _alipay_call(method: str, biz_content: dict, **params: str) -> dict:
    from app.platforms.alipay import call_gateway

    try:
        return call_gateway(method, biz_content, **params)
    except DomainError as exc:
        retryable = exc.status >= 500 and exc.code != "ALIPAY_BUSINESS_ERROR"
        raise DeliveryError(f"{exc.code}: {exc}", retryable=retryable) from exc
