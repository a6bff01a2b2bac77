"""The till request signature (pos_adapter/README.md), shared by the server check and the client.

``X-Signature`` = lowercase hex HMAC-SHA256(secret,
``METHOD\\nPATH\\nQUERY\\nTIMESTAMP\\nNONCE\\nSHA256_HEX(BODY)``), QUERY being the raw query
string (empty if none) and BODY the exact bytes sent (empty for no body).
"""

from __future__ import annotations

import hashlib
import hmac

MAX_SKEW_SECONDS = 300
NONCE_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"


def string_to_sign(
    method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes
) -> str:
    return "\n".join(
        (method.upper(), path, query, timestamp, nonce, hashlib.sha256(body).hexdigest())
    )


def sign(
    secret: str, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes
) -> str:
    message = string_to_sign(method, path, query, timestamp, nonce, body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
