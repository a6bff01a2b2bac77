"""Terminal lifecycle: activation (single use, expiring), revoke, rotate, and secret lookup.

The per-terminal secret is random (256 bits), shown once at activation and stored encrypted
with a key derived from ``SECRET_KEY`` (it must be recoverable: the server recomputes HMACs).
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, bindparam, select

from app.common.clock import utcnow
from app.common.crypto import decrypt_secret, encrypt_secret, hash_token
from app.db import execute_core, unit_of_work
from app.errors import NotFound, Unauthorized
from app.extensions import db
from app.stores.models import Store, Terminal
from app.stores.services import (
    ACTIVATION_TTL,
    new_activation_code,
    normalize_activation_code,
)


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
    return activation


def revoke_terminal(terminal_id: str) -> Terminal:
    """Permanently stop a terminal: its secret and any pending activation code stop working."""
    with unit_of_work():
        terminal = _lock_terminal(terminal_id)
        terminal.status = "revoked"
        terminal.secret_encrypted = None
        terminal.activation_code_hash = None
        terminal.activation_expires_at = None
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
    """The active terminal and its secret, or the 401 that says why not."""
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
