"""Gunicorn integration (``gunicorn.conf.py``): masked logs and JSON errors from gunicorn itself.

Gunicorn answers some requests before the application sees them: a request line over
``limit_request_line`` (414), headers over their limits (431), a malformed request (400).
Its own answer is an HTML page; :func:`write_json_error` answers those in the API's error
shape instead. :class:`MaskingLogger` masks phone numbers in gunicorn's access and error logs
with the same function the application's logs use.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.glogging import Logger

from app.common.phone import PhoneMaskingFilter

_CODES = {
    400: "BAD_REQUEST",
    403: "FORBIDDEN",
    414: "URI_TOO_LONG",
    417: "EXPECTATION_FAILED",
    431: "HEADERS_TOO_LARGE",
    500: "INTERNAL_ERROR",
    501: "NOT_IMPLEMENTED",
}
_MESSAGES = {
    414: "The request line (method, path and query) is too long",
    431: "The request headers are too large",
}


class MaskingLogger(Logger):
    """Gunicorn's logger with phone numbers masked in every access and error line."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            if not any(isinstance(f, PhoneMaskingFilter) for f in logger.filters):
                logger.addFilter(PhoneMaskingFilter(wsgi=True))


def json_error_response(status_int: int, reason: str) -> bytes:
    """The raw HTTP response gunicorn sends for a request it refused before the application."""
    code = _CODES.get(status_int, f"HTTP_{status_int}")
    message = _MESSAGES.get(status_int) or (
        "Internal error" if status_int >= 500 else "The request could not be understood"
    )
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Replaces ``gunicorn.util.write_error`` (HTML); ``mesg`` (it may echo input) is dropped."""
    util.write_nonblock(sock, json_error_response(status_int, reason))


def install() -> None:
    """Called from gunicorn.conf.py, in the master before workers fork."""
    util.write_error = write_json_error
