"""Which platforms are configured. A platform whose variables are unset answers 503."""

from __future__ import annotations

from flask import current_app

from app.errors import ServiceUnavailable

REQUIRED = {
    "wechat_miniprogram": ("WECHAT_APPID", "WECHAT_APP_SECRET"),
    "wechat_pay_v2": ("WECHAT_APPID", "WECHAT_MCH_ID", "WECHAT_PAY_API_KEY"),
    "wechat_pay_v3": (
        "WECHAT_APPID",
        "WECHAT_MCH_ID",
        "WECHAT_PAY_API_V3_KEY",
        "WECHAT_PAY_PUBLIC_KEY",
        "WECHAT_PAY_PUBLIC_KEY_ID",
    ),
    "alipay": ("ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY"),
    "alipay_phone": ("ALIPAY_APP_ID", "ALIPAY_AES_KEY"),
}

# Every configuration value that must never reach a log line.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "WECHAT_APP_SECRET",
    "WECHAT_PAY_API_KEY",
    "WECHAT_PAY_API_V3_KEY",
    "ALIPAY_APP_PRIVATE_KEY",
    "ALIPAY_AES_KEY",
)


class PlatformDisabled(ServiceUnavailable):
    default_code = "PLATFORM_DISABLED"


def is_enabled(platform: str, config: dict | None = None) -> bool:
    values = config if config is not None else current_app.config
    return all(values.get(name) for name in REQUIRED[platform])


def require(platform: str) -> None:
    """Raise ``PLATFORM_DISABLED`` (503) unless ``platform`` is fully configured."""
    if not is_enabled(platform):
        raise PlatformDisabled(
            f"{platform} is not configured on this server",
            details={"missing": [n for n in REQUIRED[platform] if not current_app.config.get(n)]},
        )
