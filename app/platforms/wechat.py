"""The WeChat server API client: every request goes to ``WECHAT_API_BASE_URL``, one token shared.

wechatpy has no single base URL (each API group carries its own, and the token fetch uses a
fixed URL), so the routing happens once, in the client's HTTP session: any URL on the real host
is rewritten onto the configured base, and any other host is refused. The access token comes
from ``cgi-bin/stable_token`` and lives in Redis: every process reads the same one, a refresh
takes a Redis lock, and a refused token gets one refresh and one retry, never a loop.
"""

from __future__ import annotations

import binascii
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from flask import current_app
from wechatpy import WeChatClient
from wechatpy.crypto import WeChatWxaCrypto
from wechatpy.exceptions import InvalidAppIdException, WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

from app.errors import DomainError, ValidationFailed
from app.extensions import redis_store
from app.platforms.logsafe import install_log_redaction
from app.platforms.settings import require

log = logging.getLogger(__name__)

REAL_BASE_URL = "https://api.weixin.qq.com/"
TIMEOUT_SECONDS = 5


class PlatformCallFailed(DomainError):
    status = 502
    default_code = "PLATFORM_ERROR"


class SessionKeyMissing(DomainError):
    status = 409
    default_code = "WECHAT_SESSION_REQUIRED"


class WeChatCodeInvalid(DomainError):
    status = 401
    default_code = "WECHAT_CODE_INVALID"


def route_url(url: str, base_url: str) -> str:
    """The real WeChat URL moved onto ``base_url``; any other destination is refused."""
    base = base_url.rstrip("/") + "/"
    if url.startswith(REAL_BASE_URL):
        url = base + url[len(REAL_BASE_URL) :]
    if not url.startswith(base):
        raise PlatformCallFailed(
            "refusing a WeChat API request outside WECHAT_API_BASE_URL",
            code="PLATFORM_ROUTING_REFUSED",
        )
    return url


class RoutedSession(requests.Session):
    """A requests session that sends every request to the configured WeChat API base."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        target = route_url(url.decode() if isinstance(url, bytes) else url, self.base_url)
        kwargs.setdefault("timeout", TIMEOUT_SECONDS)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = TIMEOUT_SECONDS
        return super().request(method, target, *args, **kwargs)


@contextmanager
def _redis_lock(client: Any, name: str, *, ttl: int = 15, wait: float = 10.0) -> Iterator[None]:
    """A small Redis mutex (SET NX EX), so only one process refreshes the token at a time."""
    token = secrets.token_hex(8)
    deadline = time.monotonic() + wait
    while not client.set(name, token, nx=True, ex=ttl):
        if time.monotonic() > deadline:
            raise PlatformCallFailed("WeChat token refresh is busy", code="PLATFORM_BUSY")
        time.sleep(0.05)
    try:
        yield
    finally:
        held = client.get(name)
        if held is not None and held.decode() == token:
            client.delete(name)


TOKEN_ERRCODES = frozenset({40001, 40014, 42001})  # invalid, malformed, expired access token
FORCE_REFRESH_INTERVAL_SECONDS = 30  # stable_token allows a forced refresh about this often
TOKEN_MARGIN_SECONDS = 300  # a cached token is replaced this long before WeChat expires it


class TokenRejected(PlatformCallFailed):
    """WeChat still refused the access token after one refresh and one retry."""

    default_code = "WECHAT_TOKEN_REJECTED"


class SharedTokenWeChatClient(WeChatClient):
    """wechatpy's client with routed HTTP and one access token per appid, shared through Redis.

    The token comes from ``cgi-bin/stable_token`` (WeChat's advice for servers with several
    processes: fetching it does not invalidate the token other processes hold). A call refused
    with 40001/40014/42001 gets one refresh and one retry, then ``TokenRejected`` (502): never
    wechatpy's own unbounded retry, which recurses on a persistent 40001. Forced refreshes are
    rationed to one per 30 s across all processes; other refreshes read the current token.
    """

    def __init__(self, appid: str, secret: str, *, redis: Any, base_url: str) -> None:
        super().__init__(
            appid,
            secret,
            session=RedisStorage(redis, prefix="huiyuan:wechat"),
            timeout=TIMEOUT_SECONDS,
            auto_retry=False,  # bounded here instead (wechatpy's retry has no limit)
        )
        self._http = RoutedSession(base_url)
        self._redis = redis
        self._used_token: str | None = None

    @property
    def access_token(self) -> str:
        token = self.session.get(self.access_token_key)
        if not token:
            self.fetch_access_token()
            token = self.session.get(self.access_token_key)
        self._used_token = token
        return token

    def fetch_access_token(self, *, rejected: str | None = None) -> dict:
        """A token into the shared cache. ``rejected``: the token WeChat just refused."""
        with _redis_lock(self._redis, f"huiyuan:wechat:{self.appid}:token-lock"):
            cached = self.session.get(self.access_token_key)
            if cached and cached != (rejected or self._used_token):
                return {"access_token": cached}  # another process refreshed it meanwhile
            force = rejected is not None and bool(
                self._redis.set(
                    f"huiyuan:wechat:{self.appid}:forced-refresh",
                    "1",
                    nx=True,
                    ex=FORCE_REFRESH_INTERVAL_SECONDS,
                )
            )
            log.info("fetching a WeChat stable access token for %s (force=%s)", self.appid, force)
            return self._fetch_stable_token(force)

    def _fetch_stable_token(self, force: bool) -> dict:
        response = self._http.post(
            REAL_BASE_URL + "cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": force,
            },
        )
        try:
            response.raise_for_status()
            result = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise PlatformCallFailed("WeChat token service unreachable") from exc
        if not isinstance(result, dict) or not result.get("access_token"):
            errcode = result.get("errcode") if isinstance(result, dict) else None
            raise PlatformCallFailed(f"WeChat refused the app credentials ({errcode})")
        expires_in = int(result.get("expires_in") or 7200)
        ttl = max(expires_in - TOKEN_MARGIN_SECONDS, 60)
        self.session.set(self.access_token_key, result["access_token"], ttl)
        return result

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        retry_kwargs = dict(kwargs)
        if isinstance(kwargs.get("params"), dict):  # wechatpy writes the token into it
            retry_kwargs["params"] = {
                k: v for k, v in kwargs["params"].items() if k != "access_token"
            }
        try:
            return super()._request(method, url_or_endpoint, **kwargs)
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRCODES:
                raise
            rejected = self._used_token
        log.warning("WeChat refused the access token of %s: refreshing once", self.appid)
        self.fetch_access_token(rejected=rejected)
        try:
            return super()._request(method, url_or_endpoint, **retry_kwargs)
        except WeChatClientException as exc:
            if exc.errcode in TOKEN_ERRCODES:
                raise TokenRejected(
                    f"WeChat refused the access token again after a refresh ({exc.errcode})"
                ) from exc
            raise


def wechat_client(app: str = "miniprogram") -> SharedTokenWeChatClient:
    """The client of the mini-program (``WECHAT_APPID``) or the official account (``oa``)."""
    config = current_app.config
    if app == "oa":
        require("wechat_official_account")
        appid, secret = config["WECHAT_OA_APPID"], config["WECHAT_OA_APP_SECRET"]
    else:
        require("wechat_miniprogram")
        appid, secret = config["WECHAT_APPID"], config["WECHAT_APP_SECRET"]
    install_log_redaction()
    return SharedTokenWeChatClient(
        appid, secret, redis=redis_store.client, base_url=config["WECHAT_API_BASE_URL"]
    )


def code_to_session(code: str) -> dict:
    """``wx.login`` code → ``{openid, session_key, unionid?}``."""
    client = wechat_client()
    try:
        return client.wxa.code_to_session(code)
    except WeChatClientException as exc:
        if exc.errcode in (40029, 40163, 40226):
            raise WeChatCodeInvalid("login code invalid or used") from exc
        raise PlatformCallFailed(f"WeChat login failed ({exc.errcode})") from exc
    except requests.RequestException as exc:
        raise PlatformCallFailed("WeChat API unreachable") from exc


SESSION_KEY_TTL_SECONDS = 3 * 24 * 3600  # a new wx.login replaces it sooner


def _session_key_name(appid: str, openid: str) -> str:
    return f"huiyuan:wechat:{appid}:session-key:{openid}"


def keep_session_key(appid: str, openid: str, session_key: str | None) -> None:
    """Keep code2session's ``session_key`` on the server: it never goes to the client."""
    if session_key:
        redis_store.client.set(
            _session_key_name(appid, openid), session_key, ex=SESSION_KEY_TTL_SECONDS
        )


def phone_from_encrypted_data(appid: str, openids: list[str], encrypted_data: str, iv: str) -> str:
    """The legacy ``getPhoneNumber`` flow: ``encryptedData`` + ``iv`` decrypted (AES-128-CBC,
    ``WeChatWxaCrypto``) with the session key kept from the member's login; the watermark must
    name our appid."""
    require("wechat_miniprogram")
    keys = [redis_store.client.get(_session_key_name(appid, openid)) for openid in openids]
    keys = [k.decode() if isinstance(k, bytes) else k for k in keys if k]
    if not keys:
        raise SessionKeyMissing("no WeChat session for this member: call wx.login, then retry")
    for session_key in keys:
        try:
            info = WeChatWxaCrypto(session_key, iv, appid).decrypt_message(encrypted_data)
        except InvalidAppIdException:
            raise ValidationFailed(
                "phone data issued for another app", code="WATERMARK_MISMATCH"
            ) from None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error):
            continue  # another session key, or garbage
        if not isinstance(info, dict):
            break
        if str(info.get("countryCode", "86")) != "86":
            raise DomainError("only mainland mobile numbers", code="INVALID_PHONE")
        phone = info.get("purePhoneNumber") or info.get("phoneNumber")
        if isinstance(phone, str) and phone:
            return phone
        break
    raise ValidationFailed(
        "phone data cannot be decrypted with this member's session",
        code="PHONE_DATA_INVALID",
        details={"encrypted_data": ["cannot be decrypted; call wx.login again and retry"]},
    )


def phone_from_code(code: str) -> str:
    """``getPhoneNumber`` code → the pure phone number, checked to be for our appid."""
    client = wechat_client()
    try:
        # a full URL: the client's default base is .../cgi-bin/, where this API is not
        result = client.post(REAL_BASE_URL + "wxa/business/getuserphonenumber", data={"code": code})
    except WeChatClientException as exc:
        if exc.errcode in (40029, 40163, 40226, 47001):
            raise WeChatCodeInvalid("phone code invalid or used") from exc
        raise PlatformCallFailed(f"WeChat phone lookup failed ({exc.errcode})") from exc
    except requests.RequestException as exc:
        raise PlatformCallFailed("WeChat API unreachable") from exc
    info = result.get("phone_info") or {}
    if (info.get("watermark") or {}).get("appid") != current_app.config["WECHAT_APPID"]:
        raise PlatformCallFailed("phone number issued for another app", code="WATERMARK_MISMATCH")
    if str(info.get("countryCode", "86")) != "86":
        raise DomainError("only mainland mobile numbers", code="INVALID_PHONE")
    return str(info.get("purePhoneNumber") or "")
