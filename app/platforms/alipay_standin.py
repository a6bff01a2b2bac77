"""The Alipay gateway stand-in: ``alipay.system.oauth.token``, signed with a key it owns.

``auth_code()`` registers a single-use code; any ``sandbox-…`` code is accepted too.
``phone_response()`` builds what ``my.getPhoneNumber`` gives the mini-program.
"""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.platforms.keys import rsa_sha256_sign, rsa_sha256_verify
from app.platforms.standin_http import StandInServer, sandbox_id


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
            found = {"user_id": "2088" + str(int(sandbox_id("", code), 16))[-12:], "open_id": None}
            found["open_id"] = sandbox_id("0o", code)
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
