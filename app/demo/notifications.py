"""Notifications built exactly as the platforms build them, for the demo and the tests.

Each builder signs (or encrypts) with the platform's rules, using the SDKs' own helpers where
they exist: wechatpy's ``calculate_signature`` / ``dict_to_xml`` / ``RefundCrypto`` for API v2,
RSA-SHA256 + AES-256-GCM for API v3, and Alipay's RSA2 over the sorted ``k=v`` string.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpy.crypto import RefundCrypto
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac, dict_to_xml

from app.common.clock import SHANGHAI, utcnow
from app.platforms.keys import rsa_sha256_sign


def _beijing(at: datetime | None, fmt: str) -> str:
    return (at or utcnow()).astimezone(SHANGHAI).strftime(fmt)


def wechat_v2_xml(fields: dict, api_key: str, sign_type: str | None = "MD5") -> str:
    """Sign ``fields`` the v2 way (``sign_type`` None: HMAC-SHA256 without declaring it)."""
    data = dict(fields)
    if sign_type:
        data["sign_type"] = sign_type
    if sign_type == "MD5":
        sign = calculate_signature(data, api_key)
    else:
        sign = calculate_signature_hmac(data, api_key)
    return dict_to_xml(data, sign)


def wechat_v2_payment_fields(
    *,
    appid: str,
    mch_id: str,
    transaction_id: str,
    openid: str,
    total_fee: int,
    store: str | None = None,
    result_code: str = "SUCCESS",
    paid_at: datetime | None = None,
) -> dict:
    fields = {
        "appid": appid,
        "mch_id": mch_id,
        "nonce_str": secrets.token_hex(16),
        "return_code": "SUCCESS",
        "result_code": result_code,
        "openid": openid,
        "is_subscribe": "N",
        "trade_type": "JSAPI",
        "bank_type": "OTHERS",
        "total_fee": str(total_fee),
        "cash_fee": str(total_fee),
        "fee_type": "CNY",
        "transaction_id": transaction_id,
        "out_trade_no": "HY" + transaction_id[-16:],
        "time_end": _beijing(paid_at, "%Y%m%d%H%M%S"),
    }
    if store:
        fields["attach"] = json.dumps({"store": store})
    return fields


def wechat_v2_refund_xml(
    *,
    appid: str,
    mch_id: str,
    api_key: str,
    transaction_id: str,
    refund_id: str,
    refund_fee: int,
    total_fee: int,
    refund_status: str = "SUCCESS",
) -> str:
    """A refund notify: no signature, ``req_info`` AES-256-ECB with md5(API key)."""
    inner = {
        "transaction_id": transaction_id,
        "out_trade_no": "HY" + transaction_id[-16:],
        "refund_id": refund_id,
        "out_refund_no": "R" + refund_id[-16:],
        "total_fee": str(total_fee),
        "refund_fee": str(refund_fee),
        "settlement_refund_fee": str(refund_fee),
        "refund_status": refund_status,
        "success_time": _beijing(None, "%Y-%m-%d %H:%M:%S"),
        "refund_recv_accout": "支付用户零钱",
        "refund_request_source": "API",
    }
    root = "<root>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in inner.items()) + "</root>"
    key = hashlib.md5(api_key.encode()).hexdigest().encode()  # noqa: S324 (WeChat's rule)
    req_info = RefundCrypto(key).encrypt(root).decode()
    return dict_to_xml(
        {
            "return_code": "SUCCESS",
            "appid": appid,
            "mch_id": mch_id,
            "nonce_str": secrets.token_hex(16),
            "req_info": req_info,
        }
    )


def wechat_v3_notify(
    *,
    resource: dict,
    event_type: str,
    platform_private_pem: str,
    serial: str,
    api_v3_key: str,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    """``(headers, raw body)`` of a v3 notification, signed and encrypted as WeChat does."""
    nonce = secrets.token_hex(6)
    associated = "transaction" if event_type.startswith("TRANSACTION") else "refund"
    ciphertext = AESGCM(api_v3_key.encode()).encrypt(
        nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), associated.encode()
    )
    body = json.dumps(
        {
            "id": secrets.token_hex(16),
            "create_time": utcnow().astimezone(SHANGHAI).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功" if associated == "transaction" else "退款成功",
            "resource": {
                "original_type": associated,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": associated,
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
        indent=1,  # deliberately not our serialisation: the raw bytes are what is signed
    ).encode()
    ts = str(timestamp if timestamp is not None else int(utcnow().timestamp()))
    header_nonce = secrets.token_hex(16)
    message = f"{ts}\n{header_nonce}\n".encode() + body + b"\n"
    headers = {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": header_nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Wechatpay-Signature": rsa_sha256_sign(platform_private_pem, message),
    }
    return headers, body


def wechat_v3_transaction(
    *, appid: str, mchid: str, transaction_id: str, openid: str, total: int, store: str | None
) -> dict:
    return {
        "mchid": mchid,
        "appid": appid,
        "out_trade_no": "HY" + transaction_id[-16:],
        "transaction_id": transaction_id,
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": json.dumps({"store": store}) if store else "",
        "success_time": utcnow().astimezone(SHANGHAI).isoformat(timespec="seconds"),
        "payer": {"openid": openid},
        "amount": {"total": total, "payer_total": total, "currency": "CNY"},
    }


def alipay_sign(fields: dict[str, str], alipay_private_pem: str) -> dict[str, str]:
    """Add ``sign_type`` and ``sign``: RSA2 over sorted ``k=v`` (empty values included)."""
    data = {k: v for k, v in fields.items() if k not in ("sign", "sign_type")}
    unsigned = "&".join(f"{k}={v}" for k, v in sorted(data.items()))
    return {**data, "sign_type": "RSA2", "sign": rsa_sha256_sign(alipay_private_pem, unsigned)}


def alipay_payment_fields(
    *,
    app_id: str,
    trade_no: str,
    total_amount: str,
    buyer_id: str,
    buyer_open_id: str | None = None,
    store: str | None = None,
    trade_status: str = "TRADE_SUCCESS",
    seller_id: str = "2088101117955611",
) -> dict[str, str]:
    now = _beijing(None, "%Y-%m-%d %H:%M:%S")
    fields = {
        "notify_time": now,
        "notify_type": "trade_status_sync",
        "notify_id": secrets.token_hex(16),
        "charset": "utf-8",
        "version": "1.0",
        "auth_app_id": app_id,
        "app_id": app_id,
        "trade_no": trade_no,
        "out_trade_no": "HY" + trade_no[-16:],
        "trade_status": trade_status,
        "total_amount": total_amount,
        "receipt_amount": total_amount,
        "buyer_pay_amount": total_amount,
        "invoice_amount": total_amount,
        "point_amount": "0.00",
        "subject": "门店消费",
        "body": "",
        "buyer_id": buyer_id,
        "seller_id": seller_id,
        "gmt_create": now,
        "gmt_payment": now,
        "fund_bill_list": json.dumps([{"amount": total_amount, "fundChannel": "ALIPAYACCOUNT"}]),
    }
    if buyer_open_id:
        fields["buyer_open_id"] = buyer_open_id
    if store:
        fields["passback_params"] = json.dumps({"store": store})
    return fields
