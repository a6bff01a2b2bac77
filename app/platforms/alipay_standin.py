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
        self.user_tokens: dict[str, str | None] = {}  # access token issued → its user id
        # member cards: template ids; biz_card_no → the card; out_serial_no → biz_card_no
        self.card_templates: set[str] = set()
        self.cards: dict[str, dict] = {}
        self._card_serials: dict[str, str] = {}
        self.fail_card_calls = 0  # the next N card calls answer 20000 (service unavailable)

    def auth_code(self, user_id: str | None, open_id: str | None = None) -> str:
        code = "alicode-" + secrets.token_hex(8)
        self._codes[code] = {"user_id": user_id, "open_id": open_id}
        return code

    def sign(self, content: str) -> str:
        return rsa_sha256_sign(self.platform_private_pem, content)

    def phone_response(self, phone: str, *, signed: bool = True) -> dict:
        """What ``my.getPhoneNumber`` gives the mini-program: encrypted, optionally signed."""
        plain = json.dumps({"code": "10000", "msg": "Success", "mobile": phone}).encode()
        return self.encrypted_response(plain, signed=signed)

    def encrypted_response(self, plain: bytes, *, signed: bool = True) -> dict:
        """Any plaintext encrypted (and signed) as ``my.getPhoneNumber`` answers are."""
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        key = base64.b64decode(self.aes_key_b64)
        encryptor = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16)).encryptor()
        response = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
        answer = {"response": response}
        if signed:
            answer["sign"] = self.sign(f'"{response}"')
        return answer

    def create_card_template(self, template_id: str | None = None) -> str:
        template_id = template_id or "2021" + secrets.token_hex(8).upper()
        self.card_templates.add(template_id)
        return template_id

    def _card(self, method: str, biz: dict) -> tuple[int, str]:
        key = method.replace(".", "_") + "_response"
        if self.fail_card_calls > 0:
            self.fail_card_calls -= 1
            busy = {"code": "20000", "msg": "Service Currently Unavailable"}
            return self._signed(key, {**busy, "sub_code": "isp.unknow-error"})
        ok = {"code": "10000", "msg": "Success"}
        refused = {"code": "40004", "msg": "Business Failed"}
        if method == "alipay.marketing.card.template.create":
            return self._signed(key, {**ok, "template_id": self.create_card_template()})
        if method == "alipay.marketing.card.open":
            if biz.get("card_template_id") not in self.card_templates:
                return self._signed(key, {**refused, "sub_code": "TEMPLATE_NOT_EXIST"})
            serial = biz.get("out_serial_no", "")
            biz_card_no = self._card_serials.get(serial)  # a retried open: the same card
            if biz_card_no is None:
                biz_card_no = "A" + secrets.token_hex(8).upper()
                self._card_serials[serial] = biz_card_no
                ext = biz.get("card_ext_info") or {}
                self.cards[biz_card_no] = {
                    "state": "active",
                    "user_id": (biz.get("card_user_info") or {}).get("user_uni_id"),
                    "external_card_no": ext.get("external_card_no"),
                    "point": ext.get("point"),
                    "level": ext.get("level"),
                    "updates": [],
                }
            external = self.cards[biz_card_no]["external_card_no"]
            info = {"biz_card_no": biz_card_no, "external_card_no": external}
            return self._signed(key, {**ok, "card_info": info})
        card = self.cards.get(biz.get("target_card_no", ""))
        if card is None or card["state"] != "active":
            return self._signed(key, {**refused, "sub_code": "CARD_NOT_EXIST"})
        if method == "alipay.marketing.card.update":
            info = biz.get("card_info") or {}
            card.update({k: info[k] for k in ("point", "level") if k in info})
            card["updates"].append(info)
            return self._signed(key, {**ok, "result": True})
        if method == "alipay.marketing.card.delete":
            card["state"] = "deleted"
            return self._signed(key, {**ok, "biz_serial_no": biz.get("out_serial_no")})
        return self._signed("error_response", {"code": "40004", "msg": "Business Failed"})

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
        if params.get("method", "").startswith("alipay.marketing.card."):
            biz = json.loads(params.get("biz_content") or "{}")
            if params["method"] == "alipay.marketing.card.open":
                user = (biz.get("card_user_info") or {}).get("user_uni_id")
                if self.user_tokens.get(params.get("auth_token", "")) != user:
                    refused = {"code": "20001", "msg": "Insufficient Token Permissions"}
                    key = "alipay_marketing_card_open_response"
                    return self._signed(key, {**refused, "sub_code": "aop.invalid-auth-token"})
            return self._card(params["method"], biz)
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
            access_token=(access_token := "authusrB" + secrets.token_hex(12)),
            expires_in=1296000,
            refresh_token="authusrR" + secrets.token_hex(12),
            re_expires_in=2592000,
        )
        self.user_tokens[access_token] = payload.get("user_id")
        return self._signed("alipay_system_oauth_token_response", payload)
