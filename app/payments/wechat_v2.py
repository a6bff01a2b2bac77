"""WeChat Pay API v2 notifications (XML), verified with wechatpy.

``parse_payment_result`` checks MD5 only; WeChat may sign with HMAC-SHA256 and leave out
``sign_type``, so a notify that fails MD5 is checked again with HMAC-SHA256 unless it declared
MD5. The refund notify has no signature: ``req_info`` is AES-256-ECB with the md5 of the API key,
so decrypting it is the proof.
"""

from __future__ import annotations

import binascii
import hmac
from xml.parsers.expat import ExpatError

import xmltodict
from flask import current_app
from wechatpy.exceptions import (
    InvalidAppIdException,
    InvalidMchIdException,
    InvalidSignatureException,
)
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature_hmac

from app.payments.services import NotifyRejected, PaymentEvent, RefundEvent, store_code_from
from app.payments.timeparse import beijing
from app.platforms.settings import require

SUCCESS_XML = (
    "<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    "<return_msg><![CDATA[OK]]></return_msg></xml>"
)


def fail_xml(message: str) -> str:
    return (
        "<xml><return_code><![CDATA[FAIL]]></return_code>"
        f"<return_msg><![CDATA[{message}]]></return_msg></xml>"
    )


def _pay() -> WeChatPay:
    require("wechat_pay_v2")
    config = current_app.config
    return WeChatPay(config["WECHAT_APPID"], config["WECHAT_PAY_API_KEY"], config["WECHAT_MCH_ID"])


def _parse_xml(raw: bytes) -> dict:
    try:
        data = xmltodict.parse(raw)
    except (ExpatError, ValueError) as exc:
        raise NotifyRejected("not XML", code="SIGNATURE_INVALID") from exc
    if not isinstance(data, dict) or not isinstance(data.get("xml"), dict):
        raise NotifyRejected("not a WeChat Pay message", code="SIGNATURE_INVALID")
    return dict(data["xml"])


def _verified(raw: bytes) -> dict:
    pay = _pay()
    fields = _parse_xml(raw)
    sign_type = fields.get("sign_type")
    if sign_type not in (None, "MD5", "HMAC-SHA256"):
        raise NotifyRejected("unknown sign_type", code="SIGNATURE_INVALID")
    if sign_type in (None, "MD5"):
        try:
            return pay.parse_payment_result(raw)
        except InvalidSignatureException:
            if sign_type == "MD5":
                raise NotifyRejected("signature invalid", code="SIGNATURE_INVALID") from None
    sign = fields.pop("sign", None) or ""
    expected = calculate_signature_hmac(fields, pay.api_key)
    if not hmac.compare_digest(sign.encode(), expected.encode()):
        raise NotifyRejected("signature invalid", code="SIGNATURE_INVALID")
    return fields


def _check_ours(data: dict) -> None:
    config = current_app.config
    if data.get("appid") != config["WECHAT_APPID"]:
        raise NotifyRejected("appid is not ours", code="APPID_MISMATCH")
    if data.get("mch_id") != config["WECHAT_MCH_ID"]:
        raise NotifyRejected("mch_id is not ours", code="MCH_ID_MISMATCH")


def payment_event(raw: bytes) -> PaymentEvent | None:
    """A verified paid transaction, or None for a verified message that pays nothing."""
    data = _verified(raw)
    for key in ("total_fee", "cash_fee", "coupon_fee"):
        if data.get(key) is not None:
            try:
                data[key] = int(data[key])
            except (TypeError, ValueError):
                raise NotifyRejected(f"{key} is not an integer", code="NOTIFY_INCOMPLETE") from None
    if data.get("return_code") != "SUCCESS":
        return None
    _check_ours(data)
    if data.get("result_code") != "SUCCESS":
        return None
    if not data.get("transaction_id") or not isinstance(data.get("total_fee"), int):
        raise NotifyRejected("transaction_id or total_fee missing", code="NOTIFY_INCOMPLETE")
    openid = data.get("openid")
    payer = [("wechat_openid", data["appid"], openid)] if openid else []
    total = data["total_fee"]
    # cash_fee: what the payer paid themselves (total_fee minus vouchers, coupon_fee)
    cash = data.get("cash_fee")
    if not isinstance(cash, int):
        cash = total - (data.get("coupon_fee") or 0)
    return PaymentEvent(
        source="wechat",
        transaction_id=data["transaction_id"],
        paid_fen=max(0, min(cash, total)),
        total_fen=total,
        occurred_at=beijing(data.get("time_end"), "%Y%m%d%H%M%S"),
        payer=payer,
        store_code=store_code_from(data.get("attach")),
    )


def refund_event(raw: bytes) -> RefundEvent | None:
    """A verified successful refund, or None for a verified message that refunds nothing."""
    pay = _pay()
    fields = _parse_xml(raw)
    if fields.get("return_code") != "SUCCESS":
        return None
    _check_ours(fields)
    try:
        data = pay.parse_refund_notify_result(raw)
    except (InvalidAppIdException, InvalidMchIdException) as exc:
        raise NotifyRejected("appid or mch_id is not ours", code="APPID_MISMATCH") from exc
    except (
        UnicodeDecodeError,
        ExpatError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        binascii.Error,
    ) as exc:
        raise NotifyRejected("req_info cannot be decrypted", code="SIGNATURE_INVALID") from exc
    if not isinstance(data, dict):
        raise NotifyRejected("req_info cannot be decrypted", code="SIGNATURE_INVALID")
    if data.get("refund_status") != "SUCCESS":
        return None
    if not data.get("transaction_id") or not data.get("refund_id"):
        raise NotifyRejected("transaction_id or refund_id missing", code="NOTIFY_INCOMPLETE")
    return RefundEvent(
        source="wechat",
        transaction_id=data["transaction_id"],
        refund_key=f"wechat:refund:{data['refund_id']}",
        refund_fen=int(data["refund_fee"]),
        occurred_at=beijing(data.get("success_time"), "%Y-%m-%d %H:%M:%S"),
    )
