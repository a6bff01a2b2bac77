"""Platform keys checked at start-up: a wrong key fails fast with a message, not a 500 later.

python-alipay-sdk needs proper PEM (header on its own line, no indentation); keys pasted from the
Alipay console are often bare base64 or indented. Such keys are normalised here. A classic
mistake, configuring the app's own public key as ``ALIPAY_PUBLIC_KEY`` (every notification then
fails verification), is refused with a clear message.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from cryptography.hazmat.primitives import serialization

from app.config import ConfigError

_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.S)


def _wrap(kind: str, body: str) -> str:
    lines = textwrap.wrap(re.sub(r"\s+", "", body), 64)
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


def normalize_pem(text: str, *, private: bool) -> str:
    """Proper PEM from PEM with stray indentation, or from bare base64."""
    match = _PEM.search(text)
    if match:
        return _wrap(match.group(1), match.group(2))
    kinds = ("PRIVATE KEY", "RSA PRIVATE KEY") if private else ("PUBLIC KEY", "RSA PUBLIC KEY")
    for kind in kinds:
        candidate = _wrap(kind, text)
        try:
            _load(candidate, private=private)
        except ValueError:
            continue
        return candidate
    raise ValueError("not a PEM key nor base64 of one")


def _load(pem: str, *, private: bool) -> Any:
    if private:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    return serialization.load_pem_public_key(pem.encode())


def _public_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_platform_keys(config: dict) -> None:
    """Normalise and load every configured platform key; raise ``ConfigError`` on a bad one."""
    for name, private in (
        ("ALIPAY_APP_PRIVATE_KEY", True),
        ("ALIPAY_PUBLIC_KEY", False),
        ("WECHAT_PAY_PUBLIC_KEY", False),
        ("WECHAT_PAY_MCH_PRIVATE_KEY", True),
    ):
        if not config.get(name):
            continue
        try:
            config[name] = normalize_pem(config[name], private=private)
            _load(config[name], private=private)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name} is not a usable RSA key in PEM form") from exc
    if config.get("WECHAT_PAY_PLATFORM_CERTS"):
        from app.platforms.wechatpay_certs import parse_certificates

        try:
            parse_certificates(config["WECHAT_PAY_PLATFORM_CERTS"])
        except ValueError as exc:
            raise ConfigError("WECHAT_PAY_PLATFORM_CERTS holds no usable PEM certificate") from exc
    if config.get("ALIPAY_APP_PRIVATE_KEY") and config.get("ALIPAY_PUBLIC_KEY"):
        app_key = _load(config["ALIPAY_APP_PRIVATE_KEY"], private=True).public_key()
        platform_key = _load(config["ALIPAY_PUBLIC_KEY"], private=False)
        if _public_der(app_key) == _public_der(platform_key):
            raise ConfigError(
                "ALIPAY_PUBLIC_KEY is your app's own public key: configure the Alipay public key "
                "(支付宝公钥) from the Alipay console, or no notification will verify"
            )
