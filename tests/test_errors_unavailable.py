"""A database or Redis that is down answers 503 with the error contract (and Retry-After),
never a bare 500, and leaves nothing half done: found by `make reliability` (PostgreSQL
crash-restart, Redis stopped)."""

from __future__ import annotations

import socket

from sqlalchemy import func, select

from app.extensions import db
from app.pos.models import PosSale
from pos_adapter.client import PosClient
from tests.pos_support import sale, signed_client


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_database_that_refuses_connections_answers_503_database_unavailable(
    make_app, admin_headers
):
    down = make_app(DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x")
    with down.app_context():
        response = down.test_client().get("/admin/v1/stores", headers=admin_headers)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert response.headers["Retry-After"] == "1"


def test_pos_events_with_redis_down_answer_503_and_record_nothing(
    client, admin_headers, store, make_app
):
    till = signed_client(client, admin_headers, "SH001")
    down = make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    with down.app_context():
        other = PosClient.for_flask(
            down.test_client(), terminal_id=till.terminal_id, secret=till.secret, clock=till.clock
        )
        response = other.send_events([sale("S1", 1000, member={"phone": "13800000001"})])
    assert response.status == 503
    assert response.error_code == "REDIS_UNAVAILABLE"
    assert db.session.scalar(select(func.count()).select_from(PosSale)) == 0
    assert statuses_after_retry(till) == ["accepted"]


def statuses_after_retry(till: PosClient) -> list[str]:
    response = till.send_events([sale("S1", 1000, member={"phone": "13800000001"})])
    return [r["status"] for r in response.json["results"]]
