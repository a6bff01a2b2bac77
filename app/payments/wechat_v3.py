"""WeChat Pay API v3 notifications (JSON), verified with ``cryptography``.

The signature is RSA-SHA256 by the platform key named in ``Wechatpay-Serial`` over
``timestamp\\nnonce\\nraw body\\n`` — the raw request bytes, never re-serialised JSON. The
timestamp must be within 300 s of now (wechatpayv3 does not check it). ``resource`` is
AES-256-GCM with the APIv3 key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from app.common.clock import utcnow
from app.payments.services import NotifyRejected, PaymentEvent, RefundEvent, store_code_from
from app.payments.timeparse import iso
from app.platforms.settings import require

MAX_SKEW_SECONDS = 300
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
FAIL_BODY = {"code": "FAIL", "message": "失败"}


class SignatureRejected(NotifyRejected):
    status = 401
    default_code = "SIGNATURE_INVALID"


def _public_key_for(serial: str) -> RSAPublicKey:
    config = current_app.config
    if not serial or serial != config["WECHAT_PAY_PUBLIC_KEY_ID"]:
        raise SignatureRejected("unknown Wechatpay-Serial", code="UNKNOWN_SERIAL")
    key = serialization.load_pem_public_key(config["WECHAT_PAY_PUBLIC_KEY"].encode())
    assert isinstance(key, RSAPublicKey)
    return key


def verify(headers: Mapping[str, str], body: bytes) -> dict:
    """The notification with ``resource`` decrypted, or ``SignatureRejected``."""
    require("wechat_pay_v3")
    signature_type = headers.get("Wechatpay-Signature-Type")
    if signature_type is not None and signature_type != SIGNATURE_TYPE:
        raise SignatureRejected("unsupported signature type")
    key = _public_key_for(headers.get("Wechatpay-Serial", ""))
    timestamp = headers.get("Wechatpay-Timestamp", "")
    nonce = headers.get("Wechatpay-Nonce", "")
    try:
        skew = abs(utcnow().timestamp() - int(timestamp))
    except ValueError:
        raise SignatureRejected("timestamp missing", code="STALE_TIMESTAMP") from None
    if skew > MAX_SKEW_SECONDS:
        raise SignatureRejected("timestamp more than 300 s off", code="STALE_TIMESTAMP")
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    try:
        signature = base64.b64decode(headers.get("Wechatpay-Signature", ""), validate=True)
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureRejected("signature invalid") from None
    try:
        data = json.loads(body)
        resource = data["resource"]
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise NotifyRejected("unknown resource algorithm", code="NOTIFY_INCOMPLETE")
        plain = AESGCM(current_app.config["WECHAT_PAY_API_V3_KEY"].encode()).decrypt(
            resource["nonce"].encode(),
            base64.b64decode(resource["ciphertext"]),
            (resource.get("associated_data") or "").encode(),
        )
        data["resource"] = json.loads(plain)
    except (ValueError, KeyError, TypeError, AttributeError, InvalidTag, binascii.Error) as exc:
        raise NotifyRejected("resource cannot be decrypted", code="RESOURCE_INVALID") from exc
    return data


def events(headers: Mapping[str, str], body: bytes) -> PaymentEvent | RefundEvent | None:
    """A verified payment or refund, or None for a verified event that changes nothing."""
    data = verify(headers, body)
    resource = data["resource"]
    config = current_app.config
    if resource.get("mchid") != config["WECHAT_MCH_ID"]:
        raise NotifyRejected("mchid is not ours", code="MCH_ID_MISMATCH")
    event_type = data.get("event_type", "")
    if event_type.startswith("TRANSACTION."):
        if resource.get("appid") != config["WECHAT_APPID"]:
            raise NotifyRejected("appid is not ours", code="APPID_MISMATCH")
        if resource.get("trade_state") != "SUCCESS":
            return None
        openid = (resource.get("payer") or {}).get("openid")
        amount = resource.get("amount") or {}
        try:
            total = int(amount["total"])
            payer_total = int(amount.get("payer_total", total))  # the payer's own money
        except (KeyError, TypeError, ValueError):
            raise NotifyRejected("amount missing", code="NOTIFY_INCOMPLETE") from None
        return PaymentEvent(
            source="wechat",
            transaction_id=str(resource["transaction_id"]),
            paid_fen=max(0, min(payer_total, total)),
            total_fen=total,
            occurred_at=iso(resource.get("success_time")),
            payer=[("wechat_openid", resource["appid"], openid)] if openid else [],
            store_code=store_code_from(resource.get("attach")),
        )
    if event_type == "REFUND.SUCCESS" and resource.get("refund_status", "SUCCESS") == "SUCCESS":
        return RefundEvent(
            source="wechat",
            transaction_id=str(resource["transaction_id"]),
            refund_key=f"wechat:refund:{resource['refund_id']}",
            refund_fen=int(resource["amount"]["refund"]),
            occurred_at=iso(resource.get("success_time")),
        )
    return None
