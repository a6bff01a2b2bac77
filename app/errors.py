"""The one error contract: ``{"error": {"code", "message", "details"}}`` for every error.

Domain code raises :class:`DomainError` subclasses with a stable ``code``; HTTP layers never
build error bodies by hand.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, ClassVar

import marshmallow as ma
from flask import Flask, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from flask_smorest.arguments import ArgumentsMixin
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal with a stable machine-readable code. Subclasses fix the HTTP status."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}


class ValidationFailed(DomainError):
    status = 422
    default_code = "VALIDATION_ERROR"


class Unauthorized(DomainError):
    status = 401
    default_code = "UNAUTHORIZED"


class Forbidden(DomainError):
    status = 403
    default_code = "FORBIDDEN"


class NotFound(DomainError):
    status = 404
    default_code = "NOT_FOUND"


class Conflict(DomainError):
    status = 409
    default_code = "CONFLICT"


class TooManyRequests(DomainError):
    status = 429
    default_code = "RATE_LIMITED"


class ServiceUnavailable(DomainError):
    status = 503
    default_code = "SERVICE_UNAVAILABLE"


HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class PayloadTooLarge(DomainError):
    status = 413
    default_code = "PAYLOAD_TOO_LARGE"


def error_body(code: str, message: str, details: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "Stable machine-readable code"})
    message = ma.fields.String(required=True)
    details = ma.fields.Dict(metadata={"description": "For validation errors: field → messages"})


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorDetailSchema, required=True)


class ApiWithErrorContract(Api):
    """flask-smorest's Api, answering every HTTP error in our contract's shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):  # type: ignore[override]
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        details: dict[str, Any] = {}
        if status == 422:
            messages = data.get("messages") or data.get("errors") or {}
            # webargs nests by location ("json", "query"): flatten to field → messages
            for location_errors in messages.values():
                if isinstance(location_errors, dict):
                    details.update(location_errors)
            message = (
                "Request validation failed: " + ", ".join(sorted(map(str, details)))
                if details
                else "Request validation failed"
            )
        elif status >= 500:
            message = "Internal error" if status == 500 else (error.description or error.name)
        else:
            message = data.get("message") or error.description or error.name
        body = error_body(HTTP_CODES.get(status, f"HTTP_{status}"), message, details)
        return jsonify(body), status, data.get("headers", {})


# --- hostile JSON ---------------------------------------------------------------------------
JSON_MAX_DEPTH = 64  # real documents here nest a handful of levels
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
# Endpoints that validate text item by item (a till batch: one bad event must not fail the
# others); everywhere else a bad character refuses the whole request.
ITEMWISE_TEXT_ENDPOINTS: set[str] = set()


def json_depth_exceeded(text: str, limit: int = JSON_MAX_DEPTH) -> bool:
    """True if the JSON text nests arrays/objects deeper than ``limit`` (strings ignored)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def bad_text_path(value: Any, path: str = "") -> str | None:
    """The path of the first string holding a NUL or a lone surrogate (unstorable), or None."""
    if isinstance(value, str):
        return (path or "body") if _BAD_CHAR.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _BAD_CHAR.search(key):
                return sub
            found = bad_text_path(item, sub)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = bad_text_path(item, f"{path}[{index}]" if path else f"[{index}]")
            if found:
                return found
    return None


def bad_text_error(path: str) -> ValidationFailed:
    return ValidationFailed(
        "text contains a NUL character or a lone surrogate",
        details={path: ["contains a NUL character or a lone surrogate"]},
    )


def load_json_body(text: str | bytes) -> Any:
    """``json.loads`` with a nesting limit and no unstorable text (outside itemwise endpoints).

    Raises :class:`DomainError` (400 ``JSON_TOO_DEEP``, 422 ``VALIDATION_ERROR``) or
    ``json.JSONDecodeError`` for text that is not JSON.
    """
    if isinstance(text, bytes):
        text = _decode(text)
    if json_depth_exceeded(text):
        raise DomainError(
            f"JSON nested deeper than {JSON_MAX_DEPTH} levels",
            code="JSON_TOO_DEEP",
            details={"max_depth": JSON_MAX_DEPTH},
        )
    try:
        data = json.loads(text)
    except RecursionError as exc:  # a limit lowered elsewhere: still the client's fault
        raise DomainError("JSON nested too deeply", code="JSON_TOO_DEEP") from exc
    if not _itemwise_endpoint():
        path = bad_text_path(data)
        if path is not None:
            raise bad_text_error(path)
    return data


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", "", exc.start) from exc


def _itemwise_endpoint() -> bool:
    try:
        return request.endpoint in ITEMWISE_TEXT_ENDPOINTS
    except RuntimeError:  # outside a request
        return False


class SafeFlaskParser(FlaskParser):
    """webargs' parser for every ``@blp.arguments``: JSON goes through :func:`load_json_body`."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            return webargs_core.missing
        return load_json_body(req.get_data(cache=True))


# flask-smorest's documented extension point: the parser every Blueprint.arguments uses.
ArgumentsMixin.ARGUMENTS_PARSER = SafeFlaskParser()


class SafeJSONProvider(DefaultJSONProvider):
    """``request.get_json()`` with the same limits as the argument parser."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return load_json_body(s)


def _rollback() -> None:
    """Roll back the request's session (found through the app, so errors imports no extension)."""
    current_app.extensions["sqlalchemy"].session.rollback()


def _rollback_quietly() -> None:
    try:
        _rollback()
    except Exception:  # noqa: BLE001  (the connection is gone; the pool discards it)
        log.warning("rollback failed on a lost connection")


def register_error_handlers(app: Flask) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import DataError, OperationalError

    @app.errorhandler(OperationalError)
    def _database_unavailable(error: OperationalError):
        # The server went away (restart, failover) or refused us: nothing was committed by
        # this request's failing transaction, so the client may simply try again.
        _rollback_quietly()
        log.warning("database unavailable: %s", type(error.orig).__name__)
        body = error_body("DATABASE_UNAVAILABLE", "The database is unavailable; try again")
        return jsonify(body), 503, {"Retry-After": "1"}

    @app.errorhandler(DataError)
    def _unstorable_value(error: DataError):
        # Input that passed its schema but that the database cannot store: a number beyond
        # its column's range, a NUL character in text. The client's fault, not ours.
        _rollback()
        log.warning("value refused by the database: %s", type(error.orig).__name__)
        message = "A value is out of range or contains a character that cannot be stored"
        return jsonify(error_body("VALIDATION_ERROR", message)), 422

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def _redis_unavailable(error: Exception):
        _rollback_quietly()
        log.warning("redis unavailable: %s", type(error).__name__)
        body = error_body("REDIS_UNAVAILABLE", "A required service is unavailable; try again")
        return jsonify(body), 503, {"Retry-After": "1"}

    @app.before_request
    def _refuse_large_bodies():
        # Refused from the Content-Length alone, before any byte of the body is read; a chunked
        # body is cut off by Werkzeug at the same limit (413 on reading).
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if limit and request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(
                f"request body is larger than {limit} bytes", details={"max_bytes": limit}
            )

    @app.errorhandler(OverflowError)
    def _out_of_range(error: OverflowError):
        # A date or number beyond what the platform can represent (year 9999 plus an offset).
        _rollback()
        log.warning("value out of range: %s", type(error).__name__)
        message = "A value is out of range"
        return jsonify(error_body("VALIDATION_ERROR", message)), 422

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError):
        _rollback()
        return jsonify(error_body(error.code, error.message, error.details)), error.status

    @app.errorhandler(InternalServerError)
    def _internal(error: InternalServerError):
        original = getattr(error, "original_exception", None)
        _rollback()
        if original is not None:
            log.error("unhandled error: %s", type(original).__name__, exc_info=original)
        return jsonify(error_body("INTERNAL_ERROR", "Internal error")), 500

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        # HTTPExceptions never reach here: Flask picks the more specific handler above.
        _rollback()
        log.error("unhandled error: %s", type(error).__name__, exc_info=error)
        return jsonify(error_body("INTERNAL_ERROR", "Internal error")), 500
