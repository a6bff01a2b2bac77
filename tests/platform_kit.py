"""Shared setup for the payment and identity tests: platform keys, stand-ins, a configured app.

Import the fixtures into a test module with ``from tests.platform_kit import *``-style explicit
names. Keys are generated once per session (RSA-2048 with ``cryptography``).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache

import pytest
from flask import Flask

from app.platforms.alipay_standin import AlipayGatewayStandIn
from app.platforms.keys import generate_rsa_pem
from app.platforms.wechat_standin import WeChatStandIn

APPID = "wx1234567890abcdef"
APP_SECRET = "wx-app-secret-0123456789abcdef"
MCH_ID = "1230000109"
API_KEY = "v2apikey0123456789abcdefABCDEF01"
API_V3_KEY = "v3apikey0123456789abcdefABCDEF01"
PUB_KEY_ID = "PUB_KEY_ID_0112345678901234567890123456"
ALIPAY_APP_ID = "2021000111111111"
ALIPAY_SELLER = "2088101117955611"
AES_KEY = base64.b64encode(b"0123456789abcdef").decode()
SECRETS = (APP_SECRET, API_KEY, API_V3_KEY, AES_KEY)


@lru_cache(maxsize=1)
def keys() -> dict[str, tuple[str, str]]:
    """``{name: (private PEM, public PEM)}``: our Alipay app, Alipay itself, WeChat Pay."""
    return {name: generate_rsa_pem() for name in ("app", "alipay", "wechatpay", "other")}


def alipay_private() -> str:
    return keys()["alipay"][0]


def wechatpay_private() -> str:
    return keys()["wechatpay"][0]


def other_private() -> str:
    return keys()["other"][0]


@pytest.fixture
def standins() -> Iterator[tuple[WeChatStandIn, AlipayGatewayStandIn]]:
    wechat = WeChatStandIn(APPID, APP_SECRET).start()
    alipay = AlipayGatewayStandIn(ALIPAY_APP_ID, keys()["app"][1], alipay_private(), AES_KEY)
    alipay.start()
    yield wechat, alipay
    wechat.stop()
    alipay.stop()


def platform_config(wechat_url: str, alipay_url: str) -> dict[str, object]:
    return {
        "WECHAT_APPID": APPID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_API_BASE_URL": wechat_url,
        "WECHAT_MCH_ID": MCH_ID,
        "WECHAT_PAY_API_KEY": API_KEY,
        "WECHAT_PAY_API_V3_KEY": API_V3_KEY,
        "WECHAT_PAY_PUBLIC_KEY": keys()["wechatpay"][1],
        "WECHAT_PAY_PUBLIC_KEY_ID": PUB_KEY_ID,
        "ALIPAY_APP_ID": ALIPAY_APP_ID,
        "ALIPAY_APP_PRIVATE_KEY": keys()["app"][0],
        "ALIPAY_PUBLIC_KEY": keys()["alipay"][1],
        "ALIPAY_GATEWAY_URL": alipay_url + "gateway.do",
        "ALIPAY_AES_KEY": AES_KEY,
        "ALIPAY_SELLER_ID": ALIPAY_SELLER,
    }


@pytest.fixture
def pay_app(make_app: Callable[..., Flask], standins) -> Iterator[Flask]:
    """An app with every platform configured (stand-ins for the server APIs), in context."""
    wechat, alipay = standins
    application = make_app(**platform_config(wechat.url, alipay.url))
    with application.app_context():
        yield application


def run_concurrently(app: Flask, count: int, fn: Callable[[], object]) -> list[object]:
    """Call ``fn`` from ``count`` threads released together; each gets its own app context."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def worker(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[i] = fn()
            except Exception as exc:  # noqa: BLE001 (reported to the test, which asserts on it)
                results[i] = exc
            finally:
                from app.extensions import db

                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
