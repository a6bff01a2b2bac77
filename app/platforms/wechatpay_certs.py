"""WeChat Pay API v3 platform keys: the public key, platform certificates, or both at once.

``Wechatpay-Serial`` names the key that signed a notification: ``PUB_KEY_ID_…`` for the
platform public key (``WECHAT_PAY_PUBLIC_KEY``), or a certificate serial (upper-case hex) for a
platform certificate. Certificates come from ``WECHAT_PAY_PLATFORM_CERTS`` and, when the
merchant's API key is configured (``WECHAT_PAY_MCH_PRIVATE_KEY`` + ``WECHAT_PAY_MCH_CERT_SERIAL``),
from ``GET /v3/certificates`` at ``WECHAT_PAY_API_BASE_URL``, downloaded with wechatpayv3's own
client (the list is AEAD-encrypted with the APIv3 key: decrypting it is the proof it is WeChat's).
Downloaded certificates are kept in Redis, shared by every process, and refreshed by the
``platforms.wechatpay_certificates`` job every 12 hours and whenever the newest one is within
30 days of expiry; an unknown serial triggers at most one download a minute, so a stream of
forged serials cannot make us hammer WeChat.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from flask import current_app
from wechatpayv3.core import Core

from app.extensions import redis_store

log = logging.getLogger(__name__)

PUBLIC_KEY_PREFIX = "PUB_KEY_ID_"
CACHE_KEY = "huiyuan:wechatpay:certificates"
FETCHED_KEY = "huiyuan:wechatpay:certificates:fetched_at"
THROTTLE_KEY = "huiyuan:wechatpay:certificates:throttle"
REFRESH_EVERY = timedelta(hours=12)
RENEW_BEFORE = timedelta(days=30)
UNKNOWN_SERIAL_THROTTLE_SECONDS = 60
TIMEOUT_SECONDS = 5
_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def normalize_serial(serial: str) -> str:
    """Certificate serials compare as numbers: ``0a1B`` and ``A1B`` are the same serial."""
    return format(int(serial, 16), "X")


@lru_cache(maxsize=64)
def parse_certificates(text: str) -> dict[str, x509.Certificate]:
    """``{serial: certificate}`` from one or more PEM certificates; ``ValueError`` if none."""
    found = {}
    for block in _CERT.findall(text or ""):
        certificate = x509.load_pem_x509_certificate(block.encode())
        found[format(certificate.serial_number, "X")] = certificate
    if not found:
        raise ValueError("no PEM certificate found")
    return found


def _valid_now(certificate: x509.Certificate, now: datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def configured_certificates() -> dict[str, x509.Certificate]:
    text = current_app.config.get("WECHAT_PAY_PLATFORM_CERTS")
    return parse_certificates(text) if text else {}


def downloaded_certificates() -> dict[str, x509.Certificate]:
    raw = redis_store.client.get(CACHE_KEY)
    if not raw:
        return {}
    pems = json.loads(raw)
    return parse_certificates("".join(pems)) if pems else {}


def can_download() -> bool:
    config = current_app.config
    return bool(
        config.get("WECHAT_PAY_MCH_PRIVATE_KEY") and config.get("WECHAT_PAY_MCH_CERT_SERIAL")
    )


class _CertificateClient(Core):
    """wechatpayv3's client, sent to ``WECHAT_PAY_API_BASE_URL`` and not downloading on init."""

    def __init__(self, gateway: str, **kwargs: Any) -> None:
        self._huiyuan_gateway = gateway.rstrip("/")
        super().__init__(**kwargs)

    def _init_certificates(self) -> None:  # the SDK downloads from the real host here
        self._gate_way = self._huiyuan_gateway


def download_certificates() -> int:
    """Fetch ``GET /v3/certificates`` now; keep the valid ones. Returns how many were kept."""
    config = current_app.config
    client = _CertificateClient(
        config["WECHAT_PAY_API_BASE_URL"],
        mchid=config["WECHAT_MCH_ID"],
        cert_serial_no=config["WECHAT_PAY_MCH_CERT_SERIAL"],
        private_key=config["WECHAT_PAY_MCH_PRIVATE_KEY"],
        apiv3_key=config["WECHAT_PAY_API_V3_KEY"],
        timeout=TIMEOUT_SECONDS,
    )
    client._gate_way = client._huiyuan_gateway
    try:
        client._update_certificates()  # the SDK's own download, AEAD decryption and date check
    except Exception as exc:  # noqa: BLE001 (network errors, a garbled list: keep the old set)
        log.warning("WeChat Pay certificate download failed: %s", type(exc).__name__)
        return 0
    certificates = list(client._certificates)
    if not certificates:
        log.warning("WeChat Pay certificate download returned no valid certificate")
        return 0
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates]
    redis_store.client.set(CACHE_KEY, json.dumps(pems))
    redis_store.client.set(FETCHED_KEY, str(int(time.time())))
    log.info(
        "WeChat Pay platform certificates: %s",
        ", ".join(format(c.serial_number, "X") for c in certificates),
    )
    return len(certificates)


def refresh_due(now: datetime | None = None) -> bool:
    """True when the downloaded set is old, empty, or its newest certificate expires soon."""
    now = now or datetime.now(UTC)
    fetched = redis_store.client.get(FETCHED_KEY)
    if fetched is None or time.time() - int(fetched) > REFRESH_EVERY.total_seconds():
        return True
    current = downloaded_certificates()
    if not current:
        return True
    newest = max(c.not_valid_after_utc for c in current.values())
    return newest - now < RENEW_BEFORE


def refresh_certificates_job(now: datetime | None = None) -> dict[str, Any]:
    """Periodic: download the platform certificates when due (nothing to do in public-key mode)."""
    if not can_download() or not current_app.config.get("WECHAT_PAY_API_V3_KEY"):
        return {"skipped": "no merchant API key configured"}
    if not refresh_due(now):
        return {"kept": len(downloaded_certificates())}
    return {"downloaded": download_certificates()}


def _certificate_for(serial: str) -> x509.Certificate | None:
    try:
        wanted = normalize_serial(serial)
    except ValueError:
        return None
    found = configured_certificates().get(wanted) or downloaded_certificates().get(wanted)
    if found is None and can_download():
        # an unknown serial: a rotation we have not seen yet, or a forgery. One try a minute.
        if redis_store.client.set(THROTTLE_KEY, "1", nx=True, ex=UNKNOWN_SERIAL_THROTTLE_SECONDS):
            download_certificates()
            found = downloaded_certificates().get(wanted)
    return found


class UnknownSerial(LookupError):
    pass


class CertificateExpired(LookupError):
    pass


def public_key_for_serial(serial: str) -> RSAPublicKey:
    """The platform key for ``Wechatpay-Serial``: the public key or a valid certificate's key."""
    config = current_app.config
    if serial.startswith(PUBLIC_KEY_PREFIX):
        if not config.get("WECHAT_PAY_PUBLIC_KEY") or serial != config.get(
            "WECHAT_PAY_PUBLIC_KEY_ID"
        ):
            raise UnknownSerial(serial)
        key = serialization.load_pem_public_key(config["WECHAT_PAY_PUBLIC_KEY"].encode())
    else:
        certificate = _certificate_for(serial) if serial else None
        if certificate is None:
            raise UnknownSerial(serial)
        if not _valid_now(certificate, datetime.now(UTC)):
            raise CertificateExpired(serial)
        key = certificate.public_key()
    assert isinstance(key, RSAPublicKey)
    return key
