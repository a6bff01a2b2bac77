"""Operator accounts: create, scope, disable, unlock; console login with lockout; sessions.

Login is limited and locks out exactly as clerk login does (``app.clerks.auth``): the same
attempt window per username and IP address, the same lockout after repeated wrong passwords.
A session lives in an ``HttpOnly`` cookie; its token is stored hashed with the session's CSRF
token, and stops working on logout, when it expires, or when the operator is disabled.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from app.clerks.auth import LOGIN_ATTEMPTS, LOGIN_FAILURES_PER_IP, LOGIN_WINDOW_SECONDS
from app.common.clock import utcnow
from app.common.crypto import hash_token, new_token
from app.common.lockout import check_password_with_lockout
from app.common.throttle import LoginThrottle
from app.db import unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.operators import authz
from app.operators.models import ROLES, Operator, OperatorSession, OperatorStore
from app.stores.models import Store

SESSION_TTL = timedelta(hours=12)
MIN_PASSWORD = 8


@dataclass(frozen=True)
class ConsoleSession:
    token: str
    csrf_token: str
    operator: Operator


def _store_ids(codes: list[str]) -> list[int]:
    ids = []
    for code in codes:
        store_id = db.session.execute(select(Store.id).where(Store.code == code)).scalar()
        if store_id is None:
            raise NotFound(f"store {code!r} not found", code="STORE_NOT_FOUND")
        ids.append(store_id)
    return ids


def _check_role_and_stores(role: str, store_codes: list[str]) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", code="INVALID_ROLE")
    if role in authz.HQ_ROLES and store_codes:
        raise ValidationFailed("HQ roles see every store: give no stores", code="INVALID_SCOPE")
    if role == "store_manager" and len(store_codes) != 1:
        raise ValidationFailed("a store manager has exactly one store", code="INVALID_SCOPE")
    if role == "region_manager" and not store_codes:
        raise ValidationFailed("a region manager needs its stores", code="INVALID_SCOPE")


def scope_store_ids(role: str, store_codes: list[str]) -> set[int] | None:
    """The store ids a role is scoped to (None for HQ roles), after checking they fit."""
    _check_role_and_stores(role, store_codes)
    return None if role in authz.HQ_ROLES else set(_store_ids(store_codes))


def create_operator(
    username: str, password: str, name: str, role: str, store_codes: list[str] | None = None
) -> Operator:
    store_codes = list(store_codes or [])
    _check_role_and_stores(role, store_codes)
    _check_password(password)
    with unit_of_work():
        if db.session.execute(select(Operator.id).where(Operator.username == username)).first():
            raise Conflict(f"username {username!r} is taken", code="USERNAME_TAKEN")
        operator = Operator(
            username=username,
            password_hash=generate_password_hash(password, method="scrypt"),
            name=name,
            role=role,
            status="active",
            failed_logins=0,
        )
        operator.stores = [OperatorStore(store_id=s) for s in _store_ids(store_codes)]
        db.session.add(operator)
    return operator


def get_operator(operator_id: int) -> Operator:
    operator = db.session.get(Operator, operator_id)
    if operator is None:
        raise NotFound("operator not found", code="OPERATOR_NOT_FOUND")
    return operator


def find_operator(username: str) -> Operator | None:
    return db.session.execute(
        select(Operator).where(Operator.username == username)
    ).scalar_one_or_none()


def set_status(operator_id: int, status: str) -> Operator:
    if status not in ("active", "disabled"):
        raise ValidationFailed("status: active or disabled", code="VALIDATION_ERROR")
    with unit_of_work():
        operator = get_operator(operator_id)
        operator.status = status
        if status != "active":
            _revoke_sessions(operator.id)
    return operator


def list_operators() -> list[Operator]:
    return list(db.session.scalars(select(Operator).order_by(Operator.id)))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"password needs at least {MIN_PASSWORD} characters", code="PASSWORD_TOO_SHORT"
        )


def reset_password(operator_id: int, password: str) -> Operator:
    """A new password set by HQ: the lockout is cleared and every session of the operator ends."""
    _check_password(password)
    with unit_of_work():
        operator = get_operator(operator_id)
        operator.password_hash = generate_password_hash(password, method="scrypt")
        operator.failed_logins, operator.locked_until = 0, None
        _revoke_sessions(operator.id)
    return operator


def unlock(operator_id: int) -> Operator:
    with unit_of_work():
        operator = get_operator(operator_id)
        operator.failed_logins, operator.locked_until = 0, None
    return operator


def _revoke_sessions(operator_id: int) -> None:
    db.session.execute(
        update(OperatorSession)
        .where(OperatorSession.operator_id == operator_id, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# Failed console logins are throttled as clerk logins are: per username and per IP address.
_THROTTLE = LoginThrottle(
    "operator",
    per_username=LOGIN_ATTEMPTS,
    per_ip=LOGIN_FAILURES_PER_IP,
    window_seconds=LOGIN_WINDOW_SECONDS,
)


def login(username: str, password: str, ip: str) -> ConsoleSession:
    """Throttled: failed attempts count per username and per IP address."""
    return _THROTTLE.guard(username, ip, lambda: _login(username, password, ip))


def _login(username: str, password: str, ip: str) -> ConsoleSession:
    now = utcnow()
    with unit_of_work():
        operator = db.session.execute(
            select(Operator).where(Operator.username == username).with_for_update()
        ).scalar_one_or_none()
        refusal = check_password_with_lockout(
            operator,
            password,
            now,
            disabled_code="OPERATOR_DISABLED",
            disabled_message="this operator account is disabled",
        )
        if refusal is None:
            token, csrf = new_token("hyo"), secrets.token_urlsafe(32)
            db.session.add(
                OperatorSession(
                    operator_id=operator.id,
                    token_hash=hash_token(token),
                    csrf_token=csrf,
                    ip=ip[:64] if ip else None,
                    created_at=now,
                    expires_at=now + SESSION_TTL,
                )
            )
            result = ConsoleSession(token, csrf, operator)
    if refusal is not None:
        raise refusal
    return result


def session_for(token: str | None) -> tuple[OperatorSession, Operator] | None:
    """The live session and its operator behind a cookie token, or None."""
    if not token:
        return None
    row = db.session.execute(
        select(OperatorSession, Operator)
        .join(Operator, Operator.id == OperatorSession.operator_id)
        .where(OperatorSession.token_hash == hash_token(token))
    ).one_or_none()
    if row is None:
        return None
    session, operator = row
    if session.revoked_at is not None or session.expires_at <= utcnow():
        return None
    if operator.status != "active":
        return None
    return session, operator


def logout(token: str | None) -> None:
    found = session_for(token)
    if found is None:
        return
    with unit_of_work():
        found[0].revoked_at = utcnow()


def principal_for_operator(operator: Operator) -> authz.Principal:
    stores = {link.store_id for link in operator.stores}
    return authz.make_principal(
        f"operator:{operator.username}", operator.username, operator.role, stores
    )
