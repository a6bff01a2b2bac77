"""Console sessions: an ``HttpOnly``, ``SameSite=Lax`` cookie holding a random token (stored
hashed, see ``app.operators.services``), and a CSRF token bound to the session that every form
and script sends back (``csrf_token`` field or ``X-CSRF-Token`` header).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from typing import Any

from flask import abort, current_app, g, redirect, request, url_for

from app.common.crypto import constant_time_equals
from app.operators import authz
from app.operators.services import principal_for_operator, session_for

SESSION_COOKIE = "hy_console"
LOGIN_CSRF_COOKIE = "hy_console_login"


def cookie_options() -> dict[str, Any]:
    config = current_app.config["HUIYUAN_CONFIG"]
    return {
        "httponly": True,
        "samesite": "Lax",
        "secure": config.is_production,
        "path": "/console",
    }


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def check_login_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not constant_time_equals(sent, expected):
        abort(400, "CSRF token missing or wrong: reload the page")


def check_csrf() -> None:
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not constant_time_equals(sent, g.console_session.csrf_token):
        abort(400, "CSRF token missing or wrong: reload the page")


def operator_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The operator of the session cookie becomes the request's principal (the same
    authorization layer as the admin API); no session → the login page. POSTs need the CSRF
    token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = session_for(request.cookies.get(SESSION_COOKIE))
        if found is None:
            return redirect(url_for("console.login", next=request.full_path))
        g.console_session, g.operator = found
        g.admin_name = f"operator:{g.operator.username}"
        authz.enter(principal_for_operator(g.operator))
        if request.method == "POST":
            check_csrf()
        return view(*args, **kwargs)

    return wrapper
