"""Verifying signed till requests at the edge; sets ``g.till`` (terminal and its store).

Order: headers present and well formed → timestamp within ±300 s → terminal active →
signature (constant-time) → nonce unused (``SET NX`` in Redis for the window). The nonce is
remembered only after the signature checks out, so nobody can burn a terminal's nonces.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Callable
from typing import Any

from flask import g, request

from app.common.clock import utcnow
from app.errors import Unauthorized
from app.extensions import redis_store
from app.pos.context import TillContext
from app.pos.terminals import terminal_for_request
from pos_adapter.signing import MAX_SKEW_SECONDS, NONCE_PATTERN, sign

POS_SECURITY = [{"posSignature": []}]
_NONCE_RE = re.compile(NONCE_PATTERN)
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)  # not str.isdigit: "²" is a digit to it
_HEADERS = ("X-Terminal-Id", "X-Timestamp", "X-Nonce", "X-Signature")


def verify_request() -> TillContext:
    values = {name: request.headers.get(name, "") for name in _HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise Unauthorized(
            "signed request headers missing",
            code="SIGNATURE_HEADERS_MISSING",
            details={"missing": missing},
        )
    terminal_id, timestamp, nonce, signature = (values[name] for name in _HEADERS)
    if not _TIMESTAMP_RE.fullmatch(timestamp) or not _NONCE_RE.match(nonce):
        raise Unauthorized(
            "X-Timestamp must be unix seconds; X-Nonce 8-64 of [A-Za-z0-9_-]",
            code="SIGNATURE_HEADERS_INVALID",
        )
    if abs(utcnow().timestamp() - int(timestamp)) > MAX_SKEW_SECONDS:
        raise Unauthorized(
            f"X-Timestamp is more than {MAX_SKEW_SECONDS} s from server time",
            code="STALE_TIMESTAMP",
        )
    terminal, secret = terminal_for_request(terminal_id)
    expected = sign(
        secret,
        request.method,
        request.script_root + request.path,
        request.query_string.decode("latin-1"),
        timestamp,
        nonce,
        request.get_data(cache=True),
    )
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise Unauthorized("signature does not match", code="BAD_SIGNATURE")
    key = f"pos-nonce:{terminal.terminal_id}:{nonce}"
    if not redis_store.client.set(key, b"1", nx=True, ex=2 * MAX_SKEW_SECONDS + 5):
        raise Unauthorized("nonce already used", code="NONCE_REUSED")
    return TillContext(terminal.terminal_id, terminal.store_id, terminal.store_code)


def signed_request(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.till = verify_request()
        return view(*args, **kwargs)

    return wrapper
