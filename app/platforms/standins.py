"""Local stand-ins for the WeChat server API and the Alipay gateway: real HTTP on 127.0.0.1.

They answer the calls Huiyuan makes, the way the platforms do, so the real client code runs end
to end offline (tests and the development sandbox). Each runs a ``ThreadingHTTPServer`` in a
daemon thread on a free loopback port; ``url`` is what ``WECHAT_API_BASE_URL`` /
``ALIPAY_GATEWAY_URL`` point at.

Codes: ``login_code()`` / ``phone_code()`` / ``auth_code()`` register single-use codes. For the
sandbox, any code starting ``sandbox-`` is accepted: the identity is derived from the code, and
``sandbox-phone-13812345678`` yields that phone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.platforms.keys import rsa_sha256_sign, rsa_sha256_verify


class _Handler(BaseHTTPRequestHandler):
    standin: ClassVar[Any]

    def log_message(self, format: str, *args: Any) -> None:
        return  # query strings carry secrets: never print them

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status, body = self.standin.handle("GET", parts.path, dict(parse_qsl(parts.query)), b"")
        self._answer(status, body)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body = self.standin.handle("POST", parts.path, dict(parse_qsl(parts.query)), raw)
        self._answer(status, body)


class StandInServer:
    """A loopback HTTP server in a thread. ``start()`` → ``url``; ``stop()`` when done."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "stand-in not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> StandInServer:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, str]:
        with self._lock:
            self.requests.append((method, path))
            return self.route(method, path, query, body)

    def route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, str]:
        raise NotImplementedError


def _sandbox_id(prefix: str, code: str) -> str:
    return prefix + hashlib.sha256(code.encode()).hexdigest()[:24]


class WeChatStandIn(StandInServer):
    """``cgi-bin/token``, ``sns/jscode2session`` and ``wxa/business/getuserphonenumber``."""

    def __init__(self, appid: str, secret: str) -> None:
        super().__init__()
        self.appid, self.secret = appid, secret
        self.tokens: set[str] = set()
        self.token_fetches = 0
        self._login: dict[str, tuple[str, str | None]] = {}
        self._phones: dict[str, tuple[str, str]] = {}

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
            found = (_sandbox_id("o", code), None)
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


class AlipayGatewayStandIn(StandInServer):
    """The OpenAPI gateway for ``alipay.system.oauth.token``, signing with a key it owns.

    It checks the request's RSA2 signature with the app's public key, as Alipay does.
    """

    def __init__(
        self, app_id: str, app_public_pem: str, platform_private_pem: str, aes_key_b64: str
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.app_public_pem = app_public_pem
        self.platform_private_pem = platform_private_pem
        self.aes_key_b64 = aes_key_b64
        self._codes: dict[str, dict] = {}

    def auth_code(self, user_id: str | None, open_id: str | None = None) -> str:
        code = "alicode-" + secrets.token_hex(8)
        self._codes[code] = {"user_id": user_id, "open_id": open_id}
        return code

    def sign(self, content: str) -> str:
        return rsa_sha256_sign(self.platform_private_pem, content)

    def phone_response(self, phone: str, *, signed: bool = True) -> dict:
        """What ``my.getPhoneNumber`` gives the mini-program: encrypted, optionally signed."""
        plain = json.dumps({"code": "10000", "msg": "Success", "mobile": phone}).encode()
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        key = base64.b64decode(self.aes_key_b64)
        encryptor = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16)).encryptor()
        response = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
        answer = {"response": response}
        if signed:
            answer["sign"] = self.sign(f'"{response}"')
        return answer

    def _signed(self, response_key: str, payload: dict) -> tuple[int, str]:
        inner = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return 200, f'{{"{response_key}":{inner},"sign":"{self.sign(inner)}"}}'

    def route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, str]:
        params = dict(query)
        if method == "POST" and body:
            params.update(dict(parse_qsl(body.decode())))
        sign = params.pop("sign", "")
        unsigned = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        if params.get("app_id") != self.app_id or not rsa_sha256_verify(
            self.app_public_pem, unsigned, sign
        ):
            error = {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-signature",
            }
            return self._signed("error_response", error)
        if params.get("method") != "alipay.system.oauth.token":
            return self._signed("error_response", {"code": "40004", "msg": "Business Failed"})
        code = params.get("code", "")
        found = self._codes.pop(code, None)
        if found is None and code.startswith("sandbox-"):
            found = {"user_id": "2088" + str(int(_sandbox_id("", code), 16))[-12:], "open_id": None}
            found["open_id"] = _sandbox_id("0o", code)
        if found is None:
            error = {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.code-invalid",
                "sub_msg": "授权码code无效",
            }
            return self._signed("error_response", error)
        payload = {k: v for k, v in found.items() if v}
        payload.update(
            access_token="authusrB" + secrets.token_hex(12),
            expires_in=1296000,
            refresh_token="authusrR" + secrets.token_hex(12),
            re_expires_in=2592000,
        )
        return self._signed("alipay_system_oauth_token_response", payload)
