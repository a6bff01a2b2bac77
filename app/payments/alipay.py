"""Alipay async notifications (form-encoded, RSA2), verified with python-alipay-sdk.

Pitfalls handled: ``sign`` is popped before verifying, a ``sign_type`` mismatch
(``AliPayException``) or a garbage signature (``binascii.Error``) is a rejection, never a 500;
``app_id`` (and ``seller_id`` when configured) must be ours; amounts are yuan strings.
"""

from __future__ import annotations

import binascii
from decimal import Decimal, InvalidOperation

from alipay.exceptions import AliPayException
from flask import current_app

from app.payments.services import NotifyRejected, PaymentEvent, RefundEvent, store_code_from
from app.payments.timeparse import beijing
from app.platforms.alipay import alipay_client

PAID = ("TRADE_SUCCESS", "TRADE_FINISHED")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def yuan_to_fen(value: str | None) -> int:
    try:
        fen = Decimal(value or "") * 100
    except InvalidOperation:
        raise NotifyRejected("amount is not a number", code="NOTIFY_INCOMPLETE") from None
    if fen != fen.to_integral_value() or fen < 0:
        raise NotifyRejected("amount has more than 2 decimals", code="NOTIFY_INCOMPLETE")
    return int(fen)


def verify(form: dict[str, str]) -> dict[str, str]:
    client = alipay_client()
    data = dict(form)
    sign = data.pop("sign", None)
    if not sign:
        raise NotifyRejected("sign missing", code="SIGNATURE_INVALID")
    try:
        ok = client.verify(dict(data), sign)
    except (AliPayException, binascii.Error, ValueError, TypeError, IndexError):
        ok = False
    if not ok:
        raise NotifyRejected("signature invalid", code="SIGNATURE_INVALID")
    config = current_app.config
    if data.get("app_id") != config["ALIPAY_APP_ID"]:
        raise NotifyRejected("app_id is not ours", code="APPID_MISMATCH")
    seller = config.get("ALIPAY_SELLER_ID")
    if seller and data.get("seller_id") != seller:
        raise NotifyRejected("seller_id is not ours", code="SELLER_ID_MISMATCH")
    return data


def _payer(data: dict[str, str]) -> list[tuple[str, str, str]]:
    payer = []
    user_id = data.get("buyer_id") or data.get("buyer_user_id")
    open_id = data.get("buyer_open_id") or data.get("open_id")
    if user_id:
        payer.append(("alipay_user_id", "", user_id))
    if open_id:
        payer.append(("alipay_open_id", data["app_id"], open_id))
    return payer


def events(form: dict[str, str]) -> list[PaymentEvent | RefundEvent]:
    """What a verified notification means, in order: a payment, then maybe a refund."""
    data = verify(form)
    status = data.get("trade_status")
    trade_no = data.get("trade_no")
    if not trade_no:
        raise NotifyRejected("trade_no missing", code="NOTIFY_INCOMPLETE")
    result: list[PaymentEvent | RefundEvent] = []
    refund_fee = data.get("refund_fee")
    if status in PAID or (status == "TRADE_CLOSED" and refund_fee):
        total = yuan_to_fen(data.get("total_amount"))
        # buyer_pay_amount: what the buyer paid themselves (not Alipay's red packets, points)
        paid = yuan_to_fen(data["buyer_pay_amount"]) if data.get("buyer_pay_amount") else total
        result.append(
            PaymentEvent(
                source="alipay",
                transaction_id=trade_no,
                paid_fen=min(paid, total),
                total_fen=total,
                occurred_at=beijing(
                    data.get("gmt_payment") or data.get("notify_time"), TIME_FORMAT
                ),
                payer=_payer(data),
                store_code=store_code_from(data.get("passback_params")),
            )
        )
    refunded_at = beijing(
        data.get("gmt_refund") or data.get("gmt_close") or data.get("notify_time"),
        TIME_FORMAT,
        fractional=True,  # gmt_refund carries milliseconds: 2026-11-23 19:01:02.345
    )
    if status == "TRADE_CLOSED":
        result.append(
            RefundEvent(
                source="alipay",
                transaction_id=trade_no,
                refund_key=f"alipay:{trade_no}:closed",
                occurred_at=refunded_at,
                full=True,  # a closed trade keeps nothing, whatever refunds came before
            )
        )
    elif refund_fee and status in PAID:
        out_biz_no = data.get("out_biz_no") or refund_fee
        result.append(
            RefundEvent(
                source="alipay",
                transaction_id=trade_no,
                refund_key=f"alipay:{trade_no}:refund:{out_biz_no}",
                occurred_at=refunded_at,
                refunded_total_fen=yuan_to_fen(refund_fee),
            )
        )
    return result
