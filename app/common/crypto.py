"""Small, shared cryptography: token hashing and secrets encrypted at rest."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


def new_token(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_token(token: str) -> str:
    """Tokens are high-entropy random strings, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _fernet(purpose: str) -> Fernet:
    key = hashlib.sha256(f"{purpose}:{current_app.config['SECRET_KEY']}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(plain: str, purpose: str = "terminal-secret") -> str:
    return _fernet(purpose).encrypt(plain.encode()).decode()


def decrypt_secret(token: str, purpose: str = "terminal-secret") -> str:
    """The plain secret of a stored token (cached: every signed till request needs it)."""
    return _decrypt(token, purpose, current_app.config["SECRET_KEY"])


@functools.lru_cache(maxsize=4096)
def _decrypt(token: str, purpose: str, secret_key: str) -> str:
    # Keyed by the ciphertext and SECRET_KEY: a rotated secret is a new token, so nothing stale
    # is ever served; an undecryptable token raises and is not cached.
    key = hashlib.sha256(f"{purpose}:{secret_key}".encode()).digest()
    try:
        return Fernet(base64.urlsafe_b64encode(key)).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("stored secret cannot be decrypted: was SECRET_KEY changed?") from exc
