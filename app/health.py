"""Liveness and readiness."""

from __future__ import annotations

import logging

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.errors import ServiceUnavailable
from app.extensions import db, redis_store

log = logging.getLogger(__name__)
blp = Blueprint("health", __name__, description="Liveness and readiness probes")


class HealthSchema(ma.Schema):
    status = ma.fields.String()
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


@blp.route("/healthz")
class Healthz(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """The process is alive"""
        return {"status": "ok", "checks": {}}


@blp.route("/readyz")
class Readyz(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """The database and Redis answer"""
        checks = {}
        try:
            db.session.execute(text("SELECT 1"))
            db.session.rollback()
            checks["database"] = "ok"
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("readiness: database unreachable: %s", type(exc).__name__)
            checks["database"] = "unreachable"
        try:
            redis_store.client.ping()
            checks["redis"] = "ok"
        except RedisError as exc:
            log.warning("readiness: redis unreachable: %s", type(exc).__name__)
            checks["redis"] = "unreachable"
        if any(v != "ok" for v in checks.values()):
            raise ServiceUnavailable("not ready", code="NOT_READY", details=checks)
        return {"status": "ok", "checks": checks}
