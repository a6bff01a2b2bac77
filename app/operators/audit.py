"""The write audit: every non-read request of an authenticated principal (admin API token or
console operator) is recorded after it is answered, refused ones included; so is every console
login attempt (:func:`record_login`), successful or not, with its address.

Recorded in its own transaction, so a write rolled back by its request is still seen as
attempted. Read it with ``GET /admin/v1/audit-log`` or on the console's ops page.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from sqlalchemy import insert

from app.common.clock import utcnow
from app.extensions import db
from app.operators import authz
from app.operators.models import WriteAudit

log = logging.getLogger(__name__)


def client_ip() -> str:
    return request.remote_addr or ""


def _write(actor: str, role: str, status: int, target: dict[str, str]) -> None:
    """One audit row for the current request, in its own transaction."""
    values = {
        "at": utcnow(),
        "actor": actor[:100],
        "role": role[:20],
        "method": request.method,
        "path": request.path[:255],
        "endpoint": (request.endpoint or "")[:100],
        "target": target,
        "status": status,
        "ip": client_ip()[:64],
        "user_agent": (request.user_agent.string or "")[:255],
    }
    try:
        db.session.rollback()  # the answer is built; whatever it did not commit is not kept
        db.session.execute(insert(WriteAudit), values)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("audit not recorded for %s %s", request.method, request.path)


def _record(response: Response) -> Response:
    if request.method in authz.READ_METHODS:
        return response
    principal = authz.current_or_none()
    if principal is None:
        return response
    target = {k: str(v) for k, v in (request.view_args or {}).items()}
    _write(principal.actor, principal.role, response.status_code, target)
    return response


def record_login(username: str, *, status: int, outcome: str, role: str | None = None) -> None:
    """A console login attempt, let in or refused: the username tried, the outcome (``ok`` or
    the refusal's code), the status answered and the address. Never the password."""
    _write(f"operator:{username}", role or "", status, {"login": outcome[:40]})


def _forget_principal() -> None:
    """A request starts unauthenticated (an app context, and its ``g``, may outlive one)."""
    g.pop("principal", None)


def register_write_audit(app: Flask) -> None:
    app.before_request(_forget_principal)
    app.after_request(_record)
