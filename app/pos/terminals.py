"""Terminal lifecycle: activation (single use, expiring), revoke, rotate, and secret lookup.

The per-terminal secret is random (256 bits), shown once at activation and stored encrypted
with a key derived from ``SECRET_KEY`` (it must be recoverable: the server recomputes HMACs).

Every signed till request needs its active terminal and secret. Each process keeps the
terminals it has verified, for at most ``TERMINAL_CACHE_SECONDS``; the request's nonce
claim reads, in the same Redis round trip, a token that every activation, revocation and
rotation replaces once committed (:func:`terminals_changed`). A request whose cached
terminal was read under another token is checked against the database again before it is
accepted, so a revoked or rotated terminal is refused by every process at once. The age limit
only bounds a change made behind the app's back (SQL by hand).
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import redis
from flask import current_app
from sqlalchemy import Select, bindparam, select

from app.common.clock import utcnow
from app.common.crypto import decrypt_secret, encrypt_secret, hash_token
from app.db import execute_core, unit_of_work
from app.errors import NotFound, Unauthorized
from app.extensions import db, redis_store
from app.stores.models import Store, Terminal
from app.stores.services import (
    ACTIVATION_TTL,
    new_activation_code,
    normalize_activation_code,
)

log = logging.getLogger(__name__)
_VERSION_KEY = "pos-terminals:version"  # a random token, replaced on every terminal change


def _lock_terminal(terminal_id: str) -> Terminal:
    terminal = db.session.execute(
        select(Terminal).where(Terminal.terminal_id == terminal_id).with_for_update()
    ).scalar_one_or_none()
    if terminal is None:
        raise NotFound("terminal not found", code="TERMINAL_NOT_FOUND")
    return terminal


@dataclass(frozen=True)
class Activation:
    terminal_id: str
    store: str
    secret: str


def activate_terminal(activation_code: str) -> Activation:
    """Use an activation code once; the returned secret is never shown again."""
    code_hash = hash_token(normalize_activation_code(activation_code or ""))
    with unit_of_work():
        terminal = db.session.execute(
            select(Terminal).where(Terminal.activation_code_hash == code_hash).with_for_update()
        ).scalar_one_or_none()
        if terminal is None or terminal.status != "pending":
            raise Unauthorized(
                "activation code unknown or already used", code="ACTIVATION_CODE_INVALID"
            )
        expires_at = terminal.activation_expires_at
        if expires_at is None or expires_at <= utcnow():
            raise Unauthorized("activation code expired", code="ACTIVATION_CODE_EXPIRED")
        secret = secrets.token_hex(32)
        terminal.secret_encrypted = encrypt_secret(secret)
        terminal.status = "active"
        terminal.activated_at = utcnow()
        terminal.activation_code_hash = None
        terminal.activation_expires_at = None
        db.session.flush()
        activation = Activation(terminal.terminal_id, terminal.store.code, secret)
    terminals_changed()
    return activation


def revoke_terminal(terminal_id: str) -> Terminal:
    """Permanently stop a terminal: its secret and any pending activation code stop working."""
    with unit_of_work():
        terminal = _lock_terminal(terminal_id)
        terminal.status = "revoked"
        terminal.secret_encrypted = None
        terminal.activation_code_hash = None
        terminal.activation_expires_at = None
    terminals_changed()
    return terminal


def revoke_store_terminals(store_id: int) -> int:
    """Revoke every terminal of a store that is being disabled. Returns how many."""
    live = db.session.scalars(
        select(Terminal.terminal_id).where(
            Terminal.store_id == store_id, Terminal.status != "revoked"
        )
    ).all()
    db.session.rollback()  # end the read: each revocation is its own unit of work
    for terminal_id in live:
        revoke_terminal(terminal_id)
    return len(live)


def rotate_terminal(terminal_id: str) -> tuple[Terminal, str, datetime]:
    """Invalidate the current secret now and issue a new activation code (24 h, single use)."""
    with unit_of_work():
        terminal = _lock_terminal(terminal_id)
        if terminal.status == "revoked":
            raise Unauthorized("terminal is revoked", code="TERMINAL_REVOKED")
        code = new_activation_code()
        expires_at = utcnow() + ACTIVATION_TTL
        terminal.status = "pending"
        terminal.secret_encrypted = None
        terminal.activation_code_hash = hash_token(normalize_activation_code(code))
        terminal.activation_expires_at = expires_at
    terminals_changed()
    return terminal, code, expires_at


@dataclass(frozen=True)
class RequestTerminal:
    """What verifying a signed till request needs of its terminal."""

    terminal_id: str
    store_id: int
    store_code: str
    status: str
    secret_encrypted: str | None


@functools.cache
def _terminal_stmt() -> Select:
    """Built once, columns only: this runs on every signed till request."""
    return (
        select(
            Terminal.terminal_id,
            Terminal.store_id,
            Store.code,
            Terminal.status,
            Terminal.secret_encrypted,
        )
        .join(Store, Store.id == Terminal.store_id)  # the caller needs the store code
        .where(Terminal.terminal_id == bindparam("terminal_id"))
    )


def terminal_for_request(terminal_id: str) -> tuple[RequestTerminal, str]:
    """The active terminal and its secret from the database, or the 401 that says why not."""
    row = execute_core(_terminal_stmt(), {"terminal_id": terminal_id}).one_or_none()
    terminal = RequestTerminal(*row) if row is not None else None
    if terminal is None:
        raise Unauthorized("unknown terminal", code="UNKNOWN_TERMINAL")
    if terminal.status == "revoked":
        raise Unauthorized("terminal is revoked", code="TERMINAL_REVOKED")
    if terminal.status != "active" or not terminal.secret_encrypted:
        raise Unauthorized(
            "terminal is not activated (or its secret was rotated)", code="TERMINAL_NOT_ACTIVE"
        )
    return terminal, decrypt_secret(terminal.secret_encrypted)


@dataclass(frozen=True)
class _Cached:
    terminal: RequestTerminal
    secret: str
    version: bytes  # the terminals' version token read before the row was
    loaded_at: float  # time.monotonic()


def _cache() -> dict[str, _Cached]:
    """This process's verified terminals (one dict per app)."""
    return current_app.extensions.setdefault("huiyuan_terminal_cache", {})


def _with_version(pipe: redis.client.Pipeline) -> redis.client.Pipeline:
    # never absent: a Redis restarted empty starts a new token, one no cached entry carries
    pipe.set(_VERSION_KEY, secrets.token_hex(8), nx=True)
    pipe.get(_VERSION_KEY)
    return pipe


def terminals_changed() -> None:
    """Call after committing a change to a terminal's status, secret or store: every process's
    cached terminals are checked against the database again on their next request."""
    _cache().clear()
    try:
        redis_store.client.set(_VERSION_KEY, secrets.token_hex(8))
    except redis.RedisError:
        # till requests fail without Redis too (their nonces live there); the other
        # processes' copies then expire within TERMINAL_CACHE_SECONDS
        log.error("terminal change not announced: Redis unavailable")


def cached_terminal(terminal_id: str, *, fresh: bool = False) -> tuple[RequestTerminal, str, bool]:
    """The active terminal and its secret, or the 401 that says why not; and whether they came
    from this process's cache (then :func:`claim_nonce`'s version must still match:
    :func:`cache_current`). ``fresh`` reads the database and refreshes the cache."""
    cache = _cache()
    entry = None if fresh else cache.get(terminal_id)
    max_age = current_app.config.get("TERMINAL_CACHE_SECONDS", 60)
    if entry is not None and time.monotonic() - entry.loaded_at < max_age:
        return entry.terminal, entry.secret, True
    version = _with_version(redis_store.client.pipeline(transaction=False)).execute()[1]
    cache.pop(terminal_id, None)
    terminal, secret = terminal_for_request(terminal_id)  # 401 unless active
    if max_age > 0:
        cache[terminal_id] = _Cached(terminal, secret, version, time.monotonic())
    return terminal, secret, False


def claim_nonce(key: str, ttl_seconds: int) -> tuple[bool, bytes]:
    """``SET key NX`` for the nonce window, and the terminals' version, in one round trip:
    whether the nonce was unused, and the version to give :func:`cache_current`."""
    pipe = redis_store.client.pipeline(transaction=False)
    pipe.set(key, b"1", nx=True, ex=ttl_seconds)
    claimed, _, version = _with_version(pipe).execute()
    return bool(claimed), version


def cache_current(terminal_id: str, version: bytes) -> bool:
    """Whether this process's copy of the terminal was read under ``version``."""
    entry = _cache().get(terminal_id)
    return entry is not None and entry.version == version
