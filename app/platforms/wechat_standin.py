"""The WeChat server API stand-in: ``cgi-bin/token``, ``sns/jscode2session``, phone numbers,
subscribe messages.

``login_code()`` / ``phone_code()`` register single-use codes. Any code starting ``sandbox-`` is
accepted too (the openid is derived from it); ``sandbox-phone-13812345678`` yields that phone.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from urllib.parse import parse_qsl

from app.platforms.standin_http import StandInServer, sandbox_id


class WeChatStandIn(StandInServer):
    """``cgi-bin/token``, ``sns/jscode2session`` and ``wxa/business/getuserphonenumber``."""

    def __init__(self, appid: str, secret: str) -> None:
        super().__init__()
        self.appid, self.secret = appid, secret
        self.tokens: set[str] = set()
        self.token_fetches = 0
        self._login: dict[str, tuple[str, str | None]] = {}
        self._phones: dict[str, tuple[str, str]] = {}
        # subscribe messages as the member's phone would show them: one per delivery id (the
        # ``hy_msg`` in the page link), however often a sender retried it
        self.subscribe_messages: dict[str, dict] = {}
        self.subscribe_sends = 0
        self.subscribe_delay = 0.0  # seconds each send takes, to let tests interrupt a batch
        self.refuse_subscribe: set[str] = set()  # openids that refused the subscription
        self._subscribe_lock = threading.Lock()

    def login_code(self, openid: str, unionid: str | None = None) -> str:
        code = "wxlogin-" + secrets.token_hex(8)
        self._login[code] = (openid, unionid)
        return code

    def phone_code(self, phone: str, appid: str | None = None) -> str:
        code = "wxphone-" + secrets.token_hex(8)
        self._phones[code] = (phone, appid or self.appid)
        return code

    def revoke_tokens(self) -> None:
        """Every issued token stops working (as when another process refreshed it)."""
        self.tokens.clear()

    def route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, str]:
        if path == "/cgi-bin/token":
            return self._token(query)
        if path == "/sns/jscode2session":
            return self._code2session(query)
        if path == "/wxa/business/getuserphonenumber" and method == "POST":
            return self._phone(query, body)
        if path == "/cgi-bin/message/subscribe/send" and method == "POST":
            return self._subscribe_send(query, body)
        return 404, json.dumps({"errcode": 404, "errmsg": "not found"})

    def _error(self, code: int, message: str) -> tuple[int, str]:
        return 200, json.dumps({"errcode": code, "errmsg": message})

    def _token(self, query: dict) -> tuple[int, str]:
        if query.get("appid") != self.appid or query.get("secret") != self.secret:
            return self._error(40125, "invalid appsecret")
        self.token_fetches += 1
        token = "AT-" + secrets.token_hex(16)
        self.tokens.add(token)
        return 200, json.dumps({"access_token": token, "expires_in": 7200})

    def _code2session(self, query: dict) -> tuple[int, str]:
        if query.get("appid") != self.appid or query.get("secret") != self.secret:
            return self._error(40125, "invalid appsecret")
        code = query.get("js_code", "")
        found = self._login.pop(code, None)
        if found is None and code.startswith("sandbox-"):
            found = (sandbox_id("o", code), None)
        if found is None:
            return self._error(40029, "invalid code")
        openid, unionid = found
        answer = {
            "openid": openid,
            "session_key": base64.b64encode(secrets.token_bytes(16)).decode(),
        }
        if unionid:
            answer["unionid"] = unionid
        return 200, json.dumps(answer)

    def _phone(self, query: dict, body: bytes) -> tuple[int, str]:
        if query.get("access_token") not in self.tokens:
            return self._error(40001, "invalid credential, access_token is invalid")
        code = json.loads(body or b"{}").get("code", "")
        found = self._phones.pop(code, None)
        if found is None and code.startswith("sandbox-phone-"):
            found = (code.removeprefix("sandbox-phone-"), self.appid)
        if found is None:
            return self._error(40029, "invalid code")
        phone, appid = found
        return 200, json.dumps(
            {
                "errcode": 0,
                "errmsg": "ok",
                "phone_info": {
                    "phoneNumber": phone,
                    "purePhoneNumber": phone,
                    "countryCode": "86",
                    "watermark": {"timestamp": 1700000000, "appid": appid},
                },
            }
        )

    def _subscribe_send(self, query: dict, body: bytes) -> tuple[int, str]:
        if query.get("access_token") not in self.tokens:
            return self._error(40001, "invalid credential, access_token is invalid")
        if self.subscribe_delay:
            time.sleep(self.subscribe_delay)
        message = json.loads(body or b"{}")
        if not message.get("touser") or not message.get("template_id"):
            return self._error(47003, "argument invalid")
        if message["touser"] in self.refuse_subscribe:
            return self._error(43101, "user refuse to accept the msg")
        with self._subscribe_lock:
            self.subscribe_sends += 1
            page = message.get("page", "")
            delivery = (
                dict(parse_qsl(page.partition("?")[2])).get("hy_msg") or f"n{self.subscribe_sends}"
            )
            self.subscribe_messages.setdefault(delivery, message)
        return 200, json.dumps({"errcode": 0, "errmsg": "ok"})
