"""The WeChat server API stand-in: access tokens (``cgi-bin/token``, ``cgi-bin/stable_token``),
``sns/jscode2session``, phone numbers (current and legacy ``encryptedData`` flows), subscribe
messages, ``wxa/getpaidunionid`` and the official account's ``cgi-bin/user/info``.

``login_code()`` / ``phone_code()`` register single-use codes. Any code starting ``sandbox-`` is
accepted too (the openid is derived from it); ``sandbox-phone-13812345678`` yields that phone.
``add_app()`` serves a second appid (the brand's official account). ``reject_tokens = True``
makes every token-checked API answer 40001, as during a token storm.
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
        self.apps: dict[str, str] = {appid: secret}
        self.tokens: set[str] = set()
        self.token_fetches = 0
        self.stable_tokens: dict[str, str] = {}  # appid → its current stable token
        self.reject_tokens = False  # a 40001 storm: every token-checked API refuses
        self.api_calls: dict[str, int] = {}  # token-checked path → calls
        self.session_keys: dict[str, str] = {}  # openid → the session key code2session gave
        self.paid_unionids: dict[str, str] = {}  # openid → unionid, for wxa/getpaidunionid
        self.followers: dict[str, dict] = {}  # official-account openid → user info
        # member cards: card_id → template; (card_id, code) → the card as the wallet shows it
        self.card_templates: dict[str, dict] = {}
        self.cards: dict[tuple[str, str], dict] = {}
        self.fail_card_calls = 0  # the next N card calls answer -1 (system busy)
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

    def add_app(self, appid: str, secret: str) -> None:
        self.apps[appid] = secret

    def encrypted_phone(self, openid: str, phone: str, appid: str | None = None) -> dict:
        """What ``getPhoneNumber`` gives an older mini-program: ``encryptedData`` + ``iv``,
        AES-128-CBC with the session key from the member's last ``code2session``."""
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        key = base64.b64decode(self.session_keys[openid])
        iv = secrets.token_bytes(16)
        plain = json.dumps(
            {
                "phoneNumber": phone,
                "purePhoneNumber": phone,
                "countryCode": "86",
                "watermark": {"timestamp": int(time.time()), "appid": appid or self.appid},
            }
        ).encode()
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        data = encryptor.update(padded) + encryptor.finalize()
        return {
            "encrypted_data": base64.b64encode(data).decode(),
            "iv": base64.b64encode(iv).decode(),
        }

    def _token_ok(self, path: str, query: dict) -> bool:
        self.api_calls[path] = self.api_calls.get(path, 0) + 1
        return not self.reject_tokens and query.get("access_token") in self.tokens

    def revoke_tokens(self) -> None:
        """Every issued token stops working (as when another process refreshed it)."""
        self.tokens.clear()

    def route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, str]:
        if path == "/cgi-bin/token":
            return self._token(query)
        if path == "/cgi-bin/stable_token" and method == "POST":
            return self._stable_token(json.loads(body or b"{}"))
        if path == "/wxa/getpaidunionid":
            return self._paid_unionid(path, query)
        if path == "/cgi-bin/user/info":
            return self._user_info(path, query)
        if path.startswith("/card/") and method == "POST":
            return self._card(path, query, json.loads(body or b"{}"))
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
        if self.apps.get(query.get("appid", "")) != query.get("secret"):
            return self._error(40125, "invalid appsecret")
        self.token_fetches += 1
        token = "AT-" + secrets.token_hex(16)
        self.tokens.add(token)
        return 200, json.dumps({"access_token": token, "expires_in": 7200})

    def _stable_token(self, request: dict) -> tuple[int, str]:
        """Normal mode answers the current token; ``force_refresh`` replaces it."""
        appid = request.get("appid", "")
        if request.get("grant_type") != "client_credential" or self.apps.get(appid) != request.get(
            "secret"
        ):
            return self._error(40125, "invalid appsecret")
        self.token_fetches += 1
        current = self.stable_tokens.get(appid)
        if current in self.tokens and not request.get("force_refresh"):
            return 200, json.dumps({"access_token": current, "expires_in": 7200})
        self.tokens.discard(current or "")
        token = "AT-" + secrets.token_hex(16)
        self.tokens.add(token)
        self.stable_tokens[appid] = token
        return 200, json.dumps({"access_token": token, "expires_in": 7200})

    def create_card_template(self, card_id: str | None = None) -> str:
        """A member card template, as ``card/create`` makes one (for the sandbox and tests)."""
        card_id = card_id or "p" + secrets.token_hex(13)
        self.card_templates[card_id] = {"card_type": "MEMBER_CARD"}
        return card_id

    def _card(self, path: str, query: dict, data: dict) -> tuple[int, str]:
        if not self._token_ok(path, query):
            return self._error(40001, "invalid credential, access_token is invalid")
        if self.fail_card_calls > 0:
            self.fail_card_calls -= 1
            return self._error(-1, "system error")
        if path == "/card/create":
            card_id = self.create_card_template()
            self.card_templates[card_id] = data.get("card") or {}
            return 200, json.dumps({"errcode": 0, "errmsg": "ok", "card_id": card_id})
        card_id, code = data.get("card_id", ""), data.get("code", "")
        if card_id not in self.card_templates:
            return self._error(40073, "invalid card id")
        card = self.cards.get((card_id, code))
        if path == "/card/membercard/activate":
            if card is not None and card["state"] != "active":
                return self._error(40056, "invalid code")
            self.cards[(card_id, code)] = card = card or {"history": []}
            card.update(
                state="active",
                membership_number=data.get("membership_number"),
                bonus=int(data.get("init_bonus") or 0),
                level=data.get("init_custom_field_value1", ""),
            )
            return 200, json.dumps({"errcode": 0, "errmsg": "ok"})
        if card is None or card["state"] != "active":
            return self._error(40056, "invalid code")
        if path == "/card/membercard/updateuser":
            if "bonus" in data:  # the absolute total wins; add_bonus is only the notice's delta
                card["bonus"] = int(data["bonus"])
            elif "add_bonus" in data:
                card["bonus"] += int(data["add_bonus"])
            if "custom_field_value1" in data:
                card["level"] = data["custom_field_value1"]
            card["history"].append((data.get("add_bonus"), data.get("record_bonus")))
            return 200, json.dumps(
                {"errcode": 0, "errmsg": "ok", "result_bonus": card["bonus"], "openid": "o"}
            )
        if path == "/card/code/unavailable":
            card["state"] = "unavailable"
            return 200, json.dumps({"errcode": 0, "errmsg": "ok"})
        return 404, json.dumps({"errcode": 404, "errmsg": "not found"})

    def delete_card(self, card_id: str, code: str) -> None:
        """The member removes the card from the WeChat wallet."""
        self.cards[(card_id, code)]["state"] = "deleted"

    def _paid_unionid(self, path: str, query: dict) -> tuple[int, str]:
        if not self._token_ok(path, query):
            return self._error(40001, "invalid credential, access_token is invalid")
        unionid = self.paid_unionids.get(query.get("openid", ""))
        if unionid is None:
            return self._error(89300, "订单无效")
        return 200, json.dumps({"errcode": 0, "errmsg": "ok", "unionid": unionid})

    def _user_info(self, path: str, query: dict) -> tuple[int, str]:
        if not self._token_ok(path, query):
            return self._error(40001, "invalid credential, access_token is invalid")
        info = self.followers.get(query.get("openid", ""))
        if info is None:
            return 200, json.dumps({"subscribe": 0, "openid": query.get("openid")})
        return 200, json.dumps({"subscribe": 1, "openid": query.get("openid"), **info})

    def _code2session(self, query: dict) -> tuple[int, str]:
        if query.get("appid") != self.appid or self.apps.get(self.appid) != query.get("secret"):
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
        self.session_keys[openid] = answer["session_key"]
        if unionid:
            answer["unionid"] = unionid
        return 200, json.dumps(answer)

    def _phone(self, query: dict, body: bytes) -> tuple[int, str]:
        if not self._token_ok("/wxa/business/getuserphonenumber", query):
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
        if not self._token_ok("/cgi-bin/message/subscribe/send", query):
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
