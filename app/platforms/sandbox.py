"""The development sandbox: with no platform credentials, ``make run`` still works end to end.

In development mode (``HUIYUAN_ENV`` unset or ``development``, not testing, not production), when
neither WeChat nor Alipay is configured, :func:`init_platforms` generates sandbox keys under
``instance/sandbox/`` (kept between runs, so ``flask demo pay`` in another shell signs with the
same keys), starts the WeChat and Alipay stand-ins on free loopback ports and points the
configuration at them. Set ``HUIYUAN_SANDBOX=0`` to turn this off. Production never does this.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from app.platforms.alipay_standin import AlipayGatewayStandIn
from app.platforms.keys import generate_rsa_pem
from app.platforms.logsafe import install_log_redaction
from app.platforms.pem import check_platform_keys
from app.platforms.wechat_standin import WeChatStandIn

log = logging.getLogger(__name__)

PLATFORM_SETTINGS = (
    "WECHAT_APPID",
    "WECHAT_APP_SECRET",
    "WECHAT_MCH_ID",
    "WECHAT_PAY_API_KEY",
    "WECHAT_PAY_API_V3_KEY",
    "WECHAT_PAY_PUBLIC_KEY",
    "ALIPAY_APP_ID",
    "ALIPAY_APP_PRIVATE_KEY",
    "ALIPAY_PUBLIC_KEY",
)
SANDBOX_FILE = "sandbox.json"


# Demo subscribe-message templates, so the outbox delivers to the WeChat stand-in in the sandbox.
SANDBOX_SUBSCRIBE_TEMPLATES = {
    kind: {"template_id": f"SANDBOX-{kind}", "page": "pages/index/index", "data": {"thing1": text}}
    for kind, text in {
        "welcome": "欢迎入会",
        "points_earned": "获得 {points} 积分",
        "points_expiring": "{points} 积分即将过期",
        "coupon_received": "收到券 {name}",
        "coupon_gifted": "已赠送 {name}",
        "coupon_claimed": "好友已领取 {name}",
        "coupon_expiring": "券即将过期",
        "birthday": "生日快乐",
    }.items()
}


def init_platforms(app: Flask, config: Any) -> None:
    """Called by the app factory: log redaction and key checks; the sandbox when it applies."""
    install_log_redaction()
    check_platform_keys(app.config)
    if sandbox_applies(config):
        enable_sandbox(app, Path(app.instance_path) / "sandbox")


def sandbox_applies(config: Any) -> bool:
    if config.ENV != "development" or config.TESTING:
        return False
    if os.environ.get("HUIYUAN_SANDBOX", "1") == "0":
        return False
    return not any(getattr(config, name) for name in PLATFORM_SETTINGS)


def load_or_create_sandbox(directory: Path) -> dict[str, str]:
    """The sandbox identities and keys, created once and kept under ``directory``."""
    path = directory / SANDBOX_FILE
    if path.is_file():
        values = json.loads(path.read_text())
        if "sandbox_wechat_card_id" not in values:  # a sandbox made before member cards
            values.update(_card_templates())
            path.write_text(json.dumps(values, indent=2))
        return values
    directory.mkdir(parents=True, exist_ok=True)
    app_private, app_public = generate_rsa_pem()
    alipay_private, alipay_public = generate_rsa_pem()
    wxpay_private, wxpay_public = generate_rsa_pem()
    values = {
        "WECHAT_APPID": "wxsandbox" + secrets.token_hex(4),
        "WECHAT_APP_SECRET": secrets.token_hex(16),
        "WECHAT_MCH_ID": "1900000109",
        "WECHAT_PAY_API_KEY": secrets.token_hex(16),
        "WECHAT_PAY_API_V3_KEY": secrets.token_hex(16),
        "WECHAT_PAY_PUBLIC_KEY": wxpay_public,
        "WECHAT_PAY_PUBLIC_KEY_ID": "PUB_KEY_ID_SANDBOX" + secrets.token_hex(4).upper(),
        "ALIPAY_APP_ID": "2021000" + str(secrets.randbelow(10**9)).zfill(9),
        "ALIPAY_APP_PRIVATE_KEY": app_private,
        "ALIPAY_PUBLIC_KEY": alipay_public,
        "ALIPAY_AES_KEY": base64.b64encode(secrets.token_bytes(16)).decode(),
        # the platforms' own keys: only the stand-ins and `flask demo pay` use these
        "sandbox_app_public_key": app_public,
        "sandbox_alipay_private_key": alipay_private,
        "sandbox_wechatpay_private_key": wxpay_private,
        **_card_templates(),
    }
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def _card_templates() -> dict[str, str]:
    return {
        "sandbox_wechat_card_id": "pSANDBOX" + secrets.token_hex(9),
        "sandbox_alipay_card_template_id": "20210000SANDBOX" + secrets.token_hex(4).upper(),
    }


def enable_sandbox(app: Flask, directory: Path) -> None:
    values = load_or_create_sandbox(directory)
    wechat = WeChatStandIn(values["WECHAT_APPID"], values["WECHAT_APP_SECRET"]).start()
    alipay = AlipayGatewayStandIn(
        values["ALIPAY_APP_ID"],
        values["sandbox_app_public_key"],
        values["sandbox_alipay_private_key"],
        values["ALIPAY_AES_KEY"],
    ).start()
    app.config.update({k: v for k, v in values.items() if not k.startswith("sandbox_")})
    app.config["WECHAT_API_BASE_URL"] = wechat.url
    app.config["ALIPAY_GATEWAY_URL"] = alipay.url + "gateway.do"
    app.config["SANDBOX"] = {"dir": str(directory), "wechat": wechat, "alipay": alipay}
    # member cards in both wallets, opened on join and synced on every change (stand-in wallets)
    if not app.config.get("MEMBER_CARDS"):
        app.config["MEMBER_CARDS"] = "wechat,alipay"
        app.config["WECHAT_CARD_ID"] = wechat.create_card_template(values["sandbox_wechat_card_id"])
        app.config["ALIPAY_CARD_TEMPLATE_ID"] = alipay.create_card_template(
            values["sandbox_alipay_card_template_id"]
        )
    if not app.config.get("WECHAT_SUBSCRIBE_TEMPLATES"):
        app.config["WECHAT_SUBSCRIBE_TEMPLATES"] = json.dumps(SANDBOX_SUBSCRIBE_TEMPLATES)
    log.info(
        "sandbox platforms: WeChat stand-in %s, Alipay stand-in %s (keys in %s)",
        wechat.url,
        alipay.url,
        directory,
    )
