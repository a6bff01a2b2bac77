"""Extension objects, created unbound and attached in ``create_app``."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from app.common.urls import IdConverter, id_param_schema
from app.errors import ApiWithErrorContract

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate(compare_type=True, render_as_batch=True)
api = ApiWithErrorContract()
api.register_converter(IdConverter, id_param_schema)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """SQLite (the embedded default) gets WAL, foreign keys and serialised writers.

    Writers take the database lock at BEGIN (``BEGIN IMMEDIATE``) so that read-then-write
    sequences cannot lose updates the way they could under SQLite's deferred transactions.
    """
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin_immediate(conn: Any) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class RedisHolder:
    """``redis_store.client``: the real Redis at ``REDIS_URL``, or an in-process stand-in."""

    def init_app(self, app: Flask) -> None:
        url = app.config.get("REDIS_URL")
        if url:
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        else:
            import fakeredis

            client = fakeredis.FakeRedis(server=_shared_fake_server())
        app.extensions["huiyuan_redis"] = client

    @property
    def client(self) -> redis.Redis:
        return current_app.extensions["huiyuan_redis"]


_FAKE_SERVER: Any = None


def _shared_fake_server() -> Any:
    """One stand-in server per process, so every app in the process sees the same keys."""
    global _FAKE_SERVER
    if _FAKE_SERVER is None:
        import fakeredis

        _FAKE_SERVER = fakeredis.FakeServer()
    return _FAKE_SERVER


redis_store = RedisHolder()
