"""Stores, terminals and clerks, as HQ manages them."""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from app.common.clock import utcnow
from app.common.crypto import hash_token
from app.db import unit_of_work
from app.errors import Conflict, NotFound
from app.extensions import db
from app.stores.models import Clerk, Store, Terminal

ACTIVATION_TTL = timedelta(hours=24)
_ACTIVATION_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: typed at a till


def get_store_by_code(code: str) -> Store:
    store = db.session.execute(select(Store).where(Store.code == code)).scalar_one_or_none()
    if store is None:
        raise NotFound(f"store {code!r} not found", code="STORE_NOT_FOUND")
    return store


def find_store_by_code(code: str | None) -> Store | None:
    if not code:
        return None
    return db.session.execute(select(Store).where(Store.code == code)).scalar_one_or_none()


def store_id_by_code(code: str | None) -> int | None:
    """``find_store_by_code(code).id`` without loading the row (hot paths)."""
    if not code:
        return None
    return db.session.execute(_store_id_stmt(), {"code": code}).scalar_one_or_none()


@functools.cache
def _store_id_stmt() -> Select:
    return select(Store.id).where(Store.code == bindparam("code"))


def create_store(code: str, name: str, city: str | None = None) -> Store:
    with unit_of_work():
        store = Store(code=code, name=name, city=city)
        db.session.add(store)
        try:
            db.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"store {code!r} already exists", code="STORE_EXISTS") from exc
    return store


def new_activation_code() -> str:
    raw = "".join(secrets.choice(_ACTIVATION_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalize_activation_code(code: str) -> str:
    return code.strip().upper().replace(" ", "")


def create_terminal(store_code: str, name: str) -> tuple[Terminal, str]:
    """A pending terminal and its activation code (single use, 24 h; only its hash is kept)."""
    with unit_of_work():
        store = get_store_by_code(store_code)
        code = new_activation_code()
        terminal = Terminal(
            terminal_id="T" + secrets.token_hex(8).upper(),
            store_id=store.id,
            name=name,
            status="pending",
            activation_code_hash=hash_token(normalize_activation_code(code)),
            activation_expires_at=utcnow() + ACTIVATION_TTL,
        )
        db.session.add(terminal)
    return terminal, code


def create_clerk(store_code: str, username: str, password: str, name: str) -> Clerk:
    with unit_of_work():
        store = get_store_by_code(store_code)
        clerk = Clerk(
            store_id=store.id,
            username=username,
            password_hash=generate_password_hash(password, method="scrypt"),
            name=name,
        )
        db.session.add(clerk)
        try:
            db.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"username {username!r} is taken", code="USERNAME_TAKEN") from exc
    return clerk


def update_store(code: str, changes: dict) -> Store:
    """Rename a store or change its city (its code is its key at the tills: fixed)."""
    with unit_of_work():
        store = get_store_by_code(code)
        for field in ("name", "city"):
            if field in changes:
                setattr(store, field, changes[field])
    return store


def set_store_status(code: str, status: str) -> Store:
    """Disable (kept with its history, but its tills stop: revoke its terminals first with
    ``app.pos.terminals.revoke_store_terminals``) or enable again."""
    with unit_of_work():
        store = get_store_by_code(code)
        store.status = status
    return store


def get_terminal(terminal_id: str) -> Terminal:
    terminal = db.session.execute(
        select(Terminal).where(Terminal.terminal_id == terminal_id)
    ).scalar_one_or_none()
    if terminal is None:
        raise NotFound("terminal not found", code="TERMINAL_NOT_FOUND")
    return terminal


def rename_terminal(terminal_id: str, name: str) -> Terminal:
    with unit_of_work():
        terminal = get_terminal(terminal_id)
        terminal.name = name
    return terminal


def update_clerk(clerk_id: int, changes: dict) -> Clerk:
    """Rename a clerk or move them to another store (their open sessions then stop)."""
    with unit_of_work():
        clerk = db.session.get(Clerk, clerk_id)
        if clerk is None:
            raise NotFound("clerk not found", code="CLERK_NOT_FOUND")
        if "name" in changes:
            clerk.name = changes["name"]
        if changes.get("store"):
            clerk.store_id = get_store_by_code(changes["store"]).id
    return clerk


def set_clerk_status(clerk_id: int, status: str) -> Clerk:
    """Disable a clerk (every session stops: tokens of a disabled clerk are refused) or enable."""
    with unit_of_work():
        clerk = db.session.get(Clerk, clerk_id)
        if clerk is None:
            raise NotFound("clerk not found", code="CLERK_NOT_FOUND")
        clerk.status = status
    return clerk
