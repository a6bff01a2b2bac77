"""The Alipay OpenAPI client (python-alipay-sdk), sent to ``ALIPAY_GATEWAY_URL``.

The SDK verifies every gateway response's signature with the Alipay public key over the exact
JSON text of ``<method>_response``; business errors come back as data (``code`` ≠ ``10000``) or
as ``error_response`` (the SDK raises), and both end as a domain error here.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from urllib.error import URLError

from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError
from alipay.utils import AliPayConfig
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import current_app

from app.errors import DomainError, Unauthorized, ValidationFailed
from app.extensions import redis_store
from app.platforms.logsafe import install_log_redaction
from app.platforms.settings import require
from app.platforms.wechat import PlatformCallFailed

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5
SANDBOX_PHONE_PREFIX = "sandbox-phone-"


class AlipayCodeInvalid(DomainError):
    status = 401
    default_code = "ALIPAY_CODE_INVALID"


def alipay_client() -> AliPay:
    require("alipay")
    install_log_redaction()
    config = current_app.config
    client = AliPay(
        appid=config["ALIPAY_APP_ID"],
        app_notify_url=None,
        app_private_key_string=config["ALIPAY_APP_PRIVATE_KEY"],
        alipay_public_key_string=config["ALIPAY_PUBLIC_KEY"],
        sign_type="RSA2",
        config=AliPayConfig(timeout=TIMEOUT_SECONDS),
    )
    client._gateway = config["ALIPAY_GATEWAY_URL"]  # the SDK has no public setting for it
    return client


def oauth_token(auth_code: str) -> dict:
    """``my.getAuthCode`` code → ``{user_id?, open_id?, access_token, …}`` (verified)."""
    client = alipay_client()
    try:
        result = client.server_api(
            "alipay.system.oauth.token", grant_type="authorization_code", code=auth_code
        )
    except AliPayException as exc:
        raise AlipayCodeInvalid("auth code invalid or used") from exc
    except AliPayValidationError as exc:
        raise PlatformCallFailed("Alipay response signature invalid") from exc
    except (URLError, OSError, ValueError) as exc:
        raise PlatformCallFailed("Alipay gateway unreachable") from exc
    if result.get("code") not in (None, "10000"):
        raise AlipayCodeInvalid("auth code refused")
    if not (result.get("user_id") or result.get("open_id")):
        raise PlatformCallFailed("Alipay returned no user id")
    return result


USER_TOKEN_KEY = "huiyuan:alipay:user-token:{}"  # noqa: S105 (a Redis key name)


def keep_user_token(user_id: str | None, access_token: str | None, expires_in: object) -> None:
    """Keep the member's Alipay access token (server-side only): opening a member card for
    them (``alipay.marketing.card.open``) needs it as ``auth_token``."""
    if not user_id or not access_token:
        return
    try:
        ttl = max(60, min(int(str(expires_in)), 30 * 24 * 3600))
    except ValueError:
        ttl = 3600
    redis_store.client.set(USER_TOKEN_KEY.format(user_id), access_token, ex=ttl)


def user_token(user_id: str) -> str | None:
    value = redis_store.client.get(USER_TOKEN_KEY.format(user_id))
    return value.decode() if isinstance(value, bytes) else value


def _alipay_public_key() -> RSAPublicKey:
    key = serialization.load_pem_public_key(current_app.config["ALIPAY_PUBLIC_KEY"].encode())
    assert isinstance(key, RSAPublicKey)
    return key


def verify_alipay_signature(content: str, sign: str) -> bool:
    """RSA2 (SHA256withRSA) by Alipay's key; a garbage signature is just ``False``."""
    try:
        signature = base64.b64decode(sign, validate=True)
        _alipay_public_key().verify(
            signature, content.encode(), rsa_padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def phone_from_encrypted_response(response: str, sign: str | None) -> str:
    """Decrypt ``my.getPhoneNumber``'s ``response`` (AES-CBC, zero IV, ``ALIPAY_AES_KEY``).

    When ``sign`` is given it must be Alipay's signature over the quoted ciphertext. In the
    development sandbox, ``sandbox-phone-13812345678`` stands for what ``my.getPhoneNumber``
    would give for that phone: the Alipay stand-in encrypts and signs it, and it then takes the
    same decryption and verification path as a real response.
    """
    require("alipay_phone")
    sandbox = current_app.config.get("SANDBOX")
    if sandbox and response.startswith(SANDBOX_PHONE_PREFIX):
        built = sandbox["alipay"].phone_response(response.removeprefix(SANDBOX_PHONE_PREFIX))
        response, sign = built["response"], built["sign"]
    if sign is not None:
        require("alipay")
        if not verify_alipay_signature(f'"{response}"', sign):
            raise Unauthorized("phone response signature invalid", code="ALIPAY_SIGN_INVALID")
    try:
        key = base64.b64decode(current_app.config["ALIPAY_AES_KEY"])
        decryptor = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16)).decryptor()
        padded = decryptor.update(base64.b64decode(response)) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = json.loads(unpadder.update(padded) + unpadder.finalize())
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "phone response cannot be decrypted",
            code="ALIPAY_RESPONSE_INVALID",
            details={"response": ["cannot be decrypted"]},
        ) from exc
    if not isinstance(plain, dict):
        raise ValidationFailed(
            "phone response is not a JSON object",
            code="ALIPAY_RESPONSE_INVALID",
            details={"response": ["decrypts to something other than an object"]},
        )
    if plain.get("code") != "10000" or not plain.get("mobile"):
        raise ValidationFailed("phone response refused", code="ALIPAY_RESPONSE_INVALID")
    return str(plain["mobile"])


def call_gateway(method: str, biz_content: dict, **params: str) -> dict:
    """Any OpenAPI method through the SDK: the verified ``<method>_response`` when its code is
    ``10000``. Alipay's system errors (``20000``, ``isp.*``) are ``PLATFORM_ERROR`` (worth a
    retry); business refusals are ``ALIPAY_BUSINESS_ERROR``."""
    client = alipay_client()
    try:
        result = client.server_api(method, biz_content, **params)
    except AliPayException as exc:
        raise PlatformCallFailed(f"Alipay refused {method}", code="ALIPAY_BUSINESS_ERROR") from exc
    except AliPayValidationError as exc:
        raise PlatformCallFailed("Alipay response signature invalid") from exc
    except (URLError, OSError, ValueError) as exc:
        raise PlatformCallFailed("Alipay gateway unreachable") from exc
    if not isinstance(result, dict):
        raise PlatformCallFailed(f"Alipay answered {method} with no object")
    code, sub_code = str(result.get("code") or ""), str(result.get("sub_code") or "")
    if code == "10000":
        return result
    if code == "20000" or sub_code.startswith("isp."):
        raise PlatformCallFailed(f"Alipay busy on {method} ({sub_code or code})")
    raise PlatformCallFailed(
        f"Alipay refused {method} ({sub_code or code})", code="ALIPAY_BUSINESS_ERROR"
    )
