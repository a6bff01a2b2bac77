"""Verifying signed till requests at the edge; sets ``g.till`` (terminal and its store).

Order: headers present and well formed → timestamp within ±300 s → terminal active →
signature (constant-time) → nonce unused (``SET NX`` in Redis for the window). The nonce is
remembered only after the signature checks out, so nobody can burn a terminal's nonces.

The terminal comes from this process's cache when it has it (``app.pos.terminals``): the
nonce claim reads, in the same Redis round trip, the token every terminal change replaces,
and a copy read under another token is checked against the database again before the
request is accepted. A signature that fails against a cached secret is tried once against
the database's, so a till activated again after a rotation is never refused.
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
from app.pos.context import TillContext
from app.pos.terminals import cache_current, cached_terminal, claim_nonce
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
    body = request.get_data(cache=True)

    def signed_by(secret: str) -> bool:
        expected = sign(
            secret,
            request.method,
            request.script_root + request.path,
            request.query_string.decode("latin-1"),
            timestamp,
            nonce,
            body,
        )
        return hmac.compare_digest(expected.encode(), signature.lower().encode())

    terminal, secret, cached = cached_terminal(terminal_id)
    if not signed_by(secret) and cached:  # a secret rotated since it was cached?
        terminal, secret, cached = cached_terminal(terminal_id, fresh=True)
    if not signed_by(secret):
        raise Unauthorized("signature does not match", code="BAD_SIGNATURE")
    claimed, version = claim_nonce(
        f"pos-nonce:{terminal.terminal_id}:{nonce}", 2 * MAX_SKEW_SECONDS + 5
    )
    if not claimed:
        raise Unauthorized("nonce already used", code="NONCE_REUSED")
    if cached and not cache_current(terminal_id, version):
        # a terminal changed since this copy was read: this one is checked again (401 if
        # it was revoked or rotated)
        terminal, secret, _ = cached_terminal(terminal_id, fresh=True)
        if not signed_by(secret):
            raise Unauthorized("signature does not match", code="BAD_SIGNATURE")
    return TillContext(terminal.terminal_id, terminal.store_id, terminal.store_code)


def signed_request(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.till = verify_request()
        return view(*args, **kwargs)

    return wrapper
