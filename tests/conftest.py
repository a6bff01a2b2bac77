"""Test setup: the schema is built by running the migrations; every test starts empty.

By default on SQLite and the in-process Redis stand-in. With ``TEST_DATABASE_URL`` (PostgreSQL)
and ``TEST_REDIS_URL`` set, on those. No test may reach beyond loopback.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app
from app.config import Config

# --- no network beyond loopback -------------------------------------------------------------
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class OutboundConnectionBlocked(ConnectionError):
    pass


def _check_address(sock: socket.socket, address: object) -> None:
    if sock.family == socket.AF_UNIX:
        return
    host = address[0] if isinstance(address, tuple) else str(address)
    if host in ("localhost", "::1") or str(host).startswith("127."):
        return
    raise OutboundConnectionBlocked(f"tests may not connect to {host!r}: loopback only")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]

TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"


def _database_url(tmp: Path) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp / 'test.db'}"


def on_postgres() -> bool:
    return bool(os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"))


def make_config(**overrides: object) -> Config:
    values: dict = {
        "ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": _SESSION_DB_URL[0],
        "REDIS_URL": os.environ.get("TEST_REDIS_URL") or None,
    }
    values.update(overrides)
    return Config.from_env(env={}, **values)


_SESSION_DB_URL: list[str] = []


@pytest.fixture(scope="session")
def app() -> Iterator[Flask]:
    tmp = Path(tempfile.mkdtemp(prefix="huiyuan-test-"))
    _SESSION_DB_URL.append(_database_url(tmp))
    application = create_app(make_config())
    with application.app_context():
        from flask_migrate import upgrade

        from app.extensions import db

        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.session.remove()
        from app.extensions import redis_store

        redis_store.client.flushdb()
    yield application
    dispose_app(application)


def dispose_app(application: Flask) -> None:
    """Close an app's pooled connections, so none is left for the garbage collector."""
    from app.extensions import db

    with application.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
        application.extensions["huiyuan_redis"].close()


@pytest.fixture
def make_app() -> Iterator[object]:
    """Build extra apps (other settings, same database); each is disposed after the test."""
    built: list[Flask] = []

    def factory(**overrides: object) -> Flask:
        application = create_app(make_config(**overrides))
        built.append(application)
        return application

    yield factory
    for application in built:
        dispose_app(application)


@pytest.fixture(autouse=True)
def _fresh_state(app: Flask) -> Iterator[None]:
    """Each test: an app context, empty tables and an empty Redis."""
    from app.extensions import db, redis_store

    with app.app_context():
        yield
        db.session.remove()
        _truncate_all(db)
        redis_store.client.flushdb()
        app.extensions["huiyuan_limiter"].storage.reset()  # throttles in process memory (no Redis)


def _truncate_all(db: object) -> None:
    from app.extensions import db as database

    tables = [t.name for t in reversed(database.metadata.sorted_tables)]
    with database.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin_token() -> str:
    from app.admin.auth import create_admin_token

    return create_admin_token("test-admin")


@pytest.fixture
def admin_headers(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture
def store(client: FlaskClient, admin_headers: dict[str, str]) -> dict:
    response = client.post(
        "/admin/v1/stores",
        json={"code": "SH001", "name": "静安店", "city": "上海"},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


requires_postgres = pytest.mark.skipif(
    not on_postgres(), reason="needs PostgreSQL (TEST_DATABASE_URL): SQLite serialises writers"
)
