"""The one error contract: ``{"error": {"code", "message", "details"}}`` for every error.

Domain code raises :class:`DomainError` subclasses with a stable ``code``; HTTP layers never
build error bodies by hand.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import marshmallow as ma
from flask import Flask, current_app, jsonify
from flask_smorest import Api
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
