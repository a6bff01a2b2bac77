"""RSA helpers for the stand-ins, the sandbox and the demo: keys and platform-style signatures."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def generate_rsa_pem() -> tuple[str, str]:
    """A new RSA-2048 key pair as ``(private PKCS#8 PEM, public SPKI PEM)``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@lru_cache(maxsize=16)
def _load_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def rsa_sha256_sign(private_pem: str, message: str | bytes) -> str:
    """Base64 of an RSA PKCS#1 v1.5 SHA-256 signature (WeChat Pay v3 and Alipay RSA2)."""
    data = message.encode() if isinstance(message, str) else message
    signature = _load_private(private_pem).sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_sha256_verify(public_pem: str, message: str | bytes, signature_b64: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    data = message.encode() if isinstance(message, str) else message
    key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(base64.b64decode(signature_b64), data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def generate_certificate_pem(
    private_pem: str,
    serial: int,
    *,
    days: int = 1825,
    not_before: datetime | None = None,
    common_name: str = "Tenpay.com Root CA",
) -> str:
    """A self-signed X.509 certificate for ``private_pem``'s key, as WeChat Pay platform
    certificates look to a merchant (serial in hex is the ``Wechatpay-Serial``)."""
    key = _load_private(private_pem)
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
