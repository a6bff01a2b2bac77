"""Joining a WeChat payer to the member they already are, by unionid, after the payment.

A payment notification carries only the payer's openid of the paying app (the mini-program or
the official account). When the paying member has no unionid yet, the applying transaction
writes an outbox delivery (``wechat_unionid`` channel); after commit the dispatcher asks WeChat
for the unionid — ``wxa/getpaidunionid`` for a mini-program payer (no consent needed, within
5 minutes of the payment), the official account's ``cgi-bin/user/info`` for an official-account
payer (the user follows it) — and joins it (:func:`app.members.login.join_unionid`), merging with
the member who logged in with that unionid. Nothing slow happens before WeChat gets its answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import requests
from flask import current_app
from sqlalchemy import select
from wechatpy.exceptions import WeChatClientException

from app.common.hooks import PurchaseApplied
from app.errors import DomainError
from app.extensions import db
from app.members.models import MemberIdentity
from app.members.services import resolve_member
from app.outbox.channels import DeliveryError, DeliverySkipped
from app.outbox.models import OutboxMessage
from app.outbox.services import enqueue_message
from app.platforms.settings import is_enabled
from app.points.models import Purchase

log = logging.getLogger(__name__)
CHANNEL = "wechat_unionid"
KIND = "payer_unionid"
RETRYABLE_ERRCODES = {-1, 45009}
NOT_AVAILABLE_ERRCODES = {89300, 89301, 89302, 40003}  # order invalid/too old, unknown openid


def _identities(member_ids: set[int], kinds: tuple[str, ...]) -> list[MemberIdentity]:
    return list(
        db.session.scalars(
            select(MemberIdentity).where(
                MemberIdentity.member_id.in_(member_ids), MemberIdentity.kind.in_(kinds)
            )
        )
    )


def on_purchases_applied(items: Sequence[PurchaseApplied]) -> None:
    """Ask for the unionid of WeChat payers who have none yet (one delivery per purchase)."""
    config = current_app.config
    if not (is_enabled("wechat_miniprogram") or is_enabled("wechat_official_account")):
        return
    wanted = {i.member_id: i for i in items if i.source == "wechat" and not i.is_refund}
    if not wanted:
        return
    known = {i.member_id for i in _identities(set(wanted), ("wechat_unionid",))}
    ours = {config.get("WECHAT_APPID"), config.get("WECHAT_OA_APPID")} - {None}
    paying = {
        i.member_id for i in _identities(set(wanted) - known, ("wechat_openid",)) if i.app in ours
    }
    for member_id in sorted(paying):
        item = wanted[member_id]
        enqueue_message(
            member_id,
            KIND,
            {"purchase_id": item.purchase_id},
            dedupe_key=f"paid-unionid:{item.purchase_id}",
            channel=CHANNEL,
        )


class PayerUnionidChannel:
    name = CHANNEL

    def send(self, message: OutboxMessage, delivery_id: str) -> None:
        from app.members.login import join_unionid
        from app.platforms.wechat import wechat_client

        member = resolve_member(message.member_id)
        identities = _identities({member.id}, ("wechat_unionid", "wechat_openid"))
        if any(i.kind == "wechat_unionid" for i in identities):
            raise DeliverySkipped("the member's unionid is known already")
        transaction_id = db.session.scalar(
            select(Purchase.external_id).where(Purchase.id == message.payload.get("purchase_id"))
        )
        config = current_app.config
        unionid = None
        try:
            for identity in identities:
                if identity.app == config.get("WECHAT_APPID") and is_enabled("wechat_miniprogram"):
                    unionid = self._paid_unionid(wechat_client(), identity, transaction_id)
                elif identity.app == config.get("WECHAT_OA_APPID") and is_enabled(
                    "wechat_official_account"
                ):
                    info = wechat_client("oa").user.get(identity.external_id)
                    unionid = info.get("unionid") if isinstance(info, dict) else None
                if unionid:
                    break
        except WeChatClientException as exc:
            raise DeliveryError(
                f"WeChat error {exc.errcode}", retryable=exc.errcode in RETRYABLE_ERRCODES
            ) from exc
        except requests.RequestException as exc:
            raise DeliveryError(
                f"WeChat unreachable: {type(exc).__name__}", retryable=True
            ) from exc
        except DomainError as exc:  # token refused twice, platform disabled
            raise DeliveryError(exc.code, retryable=exc.status >= 500) from exc
        if not unionid:
            raise DeliverySkipped("WeChat gave no unionid for this payer")
        survivor = join_unionid(member.id, str(unionid), reason="unionid:payment")
        log.info("payer member %s joined by unionid (now member %s)", member.id, survivor.id)

    @staticmethod
    def _paid_unionid(client, identity: MemberIdentity, transaction_id: str | None) -> str | None:
        try:
            return client.wxa.get_paid_unionid(identity.external_id, transaction_id=transaction_id)
        except WeChatClientException as exc:
            if exc.errcode in NOT_AVAILABLE_ERRCODES:
                return None
            raise
