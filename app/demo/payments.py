"""``flask demo pay``: send a correctly signed payment notification to a running server.

Works against the development sandbox (``make run`` without platform credentials): the sandbox
keys under ``instance/sandbox/`` are shared by the server and this command, so the notification
is signed exactly as WeChat Pay (API v2) or Alipay would sign it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import requests
from flask import current_app

from app.demo.notifications import (
    alipay_payment_fields,
    alipay_sign,
    wechat_v2_payment_fields,
    wechat_v2_xml,
)
from app.platforms.sandbox import load_or_create_sandbox


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoPayment:
    path: str
    transaction_id: str
    identity_kind: str
    payer: str
    status: int
    reply: str


def _fen(amount: str) -> int:
    try:
        fen = Decimal(amount) * 100
    except InvalidOperation:
        raise DemoError(f"amount must look like 35.00, not {amount!r}") from None
    if fen <= 0 or fen != fen.to_integral_value():
        raise DemoError("amount must be positive with at most 2 decimals")
    return int(fen)


def _sandbox() -> dict[str, str]:
    sandbox = current_app.config.get("SANDBOX")
    if not sandbox:
        raise DemoError(
            "demo pay signs with the development sandbox's keys: run it in development mode "
            "without platform credentials (as `make run` does)"
        )
    return load_or_create_sandbox(Path(sandbox["dir"]))


def send_demo_payment(
    *, wallet: str, amount: str, store: str | None, url: str, payer: str | None = None
) -> DemoPayment:
    fen = _fen(amount)
    keys = _sandbox()
    config = current_app.config
    base = url.rstrip("/")
    if wallet == "wechat":
        transaction_id = "4200" + str(secrets.randbelow(10**24)).zfill(24)
        openid = payer or "oDEMO" + secrets.token_hex(10)
        fields = wechat_v2_payment_fields(
            appid=config["WECHAT_APPID"],
            mch_id=config["WECHAT_MCH_ID"],
            transaction_id=transaction_id,
            openid=openid,
            total_fee=fen,
            store=store,
        )
        body = wechat_v2_xml(fields, config["WECHAT_PAY_API_KEY"], "MD5").encode()
        path = "/payments/wechat/notify"
        response = requests.post(
            base + path, data=body, headers={"Content-Type": "text/xml"}, timeout=10
        )
        return DemoPayment(
            path, transaction_id, "wechat_openid", openid, response.status_code, response.text
        )
    if wallet == "alipay":
        trade_no = "2026" + str(secrets.randbelow(10**24)).zfill(24)
        buyer = payer or "2088" + str(secrets.randbelow(10**12)).zfill(12)
        fields = alipay_payment_fields(
            app_id=config["ALIPAY_APP_ID"],
            trade_no=trade_no,
            total_amount=f"{Decimal(fen) / 100:.2f}",
            buyer_id=buyer,
            store=store,
            seller_id=config.get("ALIPAY_SELLER_ID") or "2088101117955611",
        )
        form = alipay_sign(fields, keys["sandbox_alipay_private_key"])
        path = "/payments/alipay/notify"
        response = requests.post(base + path, data=form, timeout=10)
        return DemoPayment(
            path, trade_no, "alipay_user_id", buyer, response.status_code, response.text
        )
    raise DemoError("wallet must be wechat or alipay")
