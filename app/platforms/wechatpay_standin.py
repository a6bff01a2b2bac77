"""The WeChat Pay API v3 stand-in: ``GET /v3/certificates`` for a certificate-mode merchant.

It checks the merchant's ``Authorization`` (``WECHATPAY2-SHA256-RSA2048``, signed with the
merchant's API private key, as WeChat Pay does) and answers the platform certificates it holds,
each AEAD_AES_256_GCM-encrypted with the APIv3 key. ``certificates`` is editable, so a test can
rotate them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets

from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.platforms.keys import rsa_sha256_verify
from app.platforms.standin_http import StandInServer

_AUTH = re.compile(r'(\w+)="([^"]*)"')


class WeChatPayStandIn(StandInServer):
    def __init__(self, mchid: str, merchant_public_pem: str, api_v3_key: str) -> None:
        super().__init__()
        self.mchid = mchid
        self.merchant_public_pem = merchant_public_pem
        self.api_v3_key = api_v3_key
        self.certificates: list[str] = []  # PEM texts, as WeChat would list them
        self.downloads = 0

    def _authorized(self, method: str, path: str) -> bool:
        header = self.current_headers.get("Authorization", "")
        scheme, _, params = header.partition(" ")
        fields = dict(_AUTH.findall(params))
        if scheme != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != self.mchid:
            return False
        message = f"{method}\n{path}\n{fields.get('timestamp')}\n{fields.get('nonce_str')}\n\n"
        return rsa_sha256_verify(self.merchant_public_pem, message, fields.get("signature", ""))

    def route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, str]:
        if path != "/v3/certificates" or method != "GET":
            return 404, json.dumps({"code": "NOT_FOUND", "message": "not found"})
        if not self._authorized(method, path):
            return 401, json.dumps({"code": "SIGN_ERROR", "message": "签名错误"})
        self.downloads += 1
        data = []
        for pem in self.certificates:
            certificate = x509.load_pem_x509_certificate(pem.encode())
            nonce = secrets.token_hex(6)
            ciphertext = AESGCM(self.api_v3_key.encode()).encrypt(
                nonce.encode(), pem.encode(), b"certificate"
            )
            data.append(
                {
                    "serial_no": format(certificate.serial_number, "X"),
                    "effective_time": certificate.not_valid_before_utc.isoformat(),
                    "expire_time": certificate.not_valid_after_utc.isoformat(),
                    "encrypt_certificate": {
                        "algorithm": "AEAD_AES_256_GCM",
                        "nonce": nonce,
                        "associated_data": "certificate",
                        "ciphertext": base64.b64encode(ciphertext).decode(),
                    },
                }
            )
        return 200, json.dumps({"data": data})
