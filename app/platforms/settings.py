"""Which platforms are configured. A platform whose variables are unset answers 503."""

from __future__ import annotations

from flask import current_app

from app.errors import ServiceUnavailable

REQUIRED = {
    "wechat_miniprogram": ("WECHAT_APPID", "WECHAT_APP_SECRET"),
    "wechat_pay_v2": ("WECHAT_APPID", "WECHAT_MCH_ID", "WECHAT_PAY_API_KEY"),
    "wechat_pay_v3": ("WECHAT_APPID", "WECHAT_MCH_ID", "WECHAT_PAY_API_V3_KEY"),
    "wechat_official_account": ("WECHAT_OA_APPID", "WECHAT_OA_APP_SECRET"),
    "alipay": ("ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY"),
    "alipay_phone": ("ALIPAY_APP_ID", "ALIPAY_AES_KEY"),
}

# Platforms that also need one of several groups of settings (each group complete).
ONE_OF = {
    "wechat_pay_v3": (
        ("WECHAT_PAY_PUBLIC_KEY", "WECHAT_PAY_PUBLIC_KEY_ID"),  # public-key mode
        ("WECHAT_PAY_PLATFORM_CERTS",),  # certificate mode, certificates configured
        ("WECHAT_PAY_MCH_PRIVATE_KEY", "WECHAT_PAY_MCH_CERT_SERIAL"),  # certificates downloaded
    ),
}

# Every configuration value that must never reach a log line.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "WECHAT_APP_SECRET",
    "WECHAT_OA_APP_SECRET",
    "WECHAT_PAY_API_KEY",
    "WECHAT_PAY_MCH_PRIVATE_KEY",
    "WECHAT_PAY_API_V3_KEY",
    "ALIPAY_APP_PRIVATE_KEY",
    "ALIPAY_AES_KEY",
)


class PlatformDisabled(ServiceUnavailable):
    default_code = "PLATFORM_DISABLED"


def _missing(platform: str, values: dict) -> list[str]:
    missing = [name for name in REQUIRED[platform] if not values.get(name)]
    groups = ONE_OF.get(platform, ())
    if groups and not any(all(values.get(n) for n in group) for group in groups):
        missing.append(" or ".join("+".join(group) for group in groups))
    return missing


def is_enabled(platform: str, config: dict | None = None) -> bool:
    values = config if config is not None else current_app.config
    return not _missing(platform, values)


def wechat_appids(config: dict | None = None) -> dict[str, str]:
    """The brand's WeChat appids under its merchant: ``{appid: "miniprogram" | "oa"}``."""
    values = config if config is not None else current_app.config
    apps = {}
    if values.get("WECHAT_APPID"):
        apps[values["WECHAT_APPID"]] = "miniprogram"
    if values.get("WECHAT_OA_APPID"):
        apps[values["WECHAT_OA_APPID"]] = "oa"
    return apps


def require(platform: str) -> None:
    """Raise ``PLATFORM_DISABLED`` (503) unless ``platform`` is fully configured."""
    if not is_enabled(platform):
        raise PlatformDisabled(
            f"{platform} is not configured on this server",
            details={"missing": _missing(platform, current_app.config)},
        )
