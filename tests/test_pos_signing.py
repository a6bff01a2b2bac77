"""Activation and request signing: every tampering is refused with no state change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.common.clock import advance, frozen, utcnow
from app.extensions import db
from app.pos.models import PosSale
from pos_adapter.client import PosClient
from tests.pos_support import make_store, new_terminal, sale, signed_client


@pytest.fixture
def till(client, admin_headers, store):
    return signed_client(client, admin_headers, "SH001")


def sale_count() -> int:
    return db.session.scalar(select(func.count()).select_from(PosSale))


def test_activation_returns_a_secret_once_and_the_code_cannot_be_used_again(
    client, admin_headers, store
):
    created = new_terminal(client, admin_headers, "SH001")
    till = PosClient.for_flask(client)
    first = till.activate(created["activation_code"].lower())  # typed casually at a till
    assert first.status == 201
    assert first.json["terminal_id"] == created["terminal_id"]
    assert first.json["store"] == "SH001" and len(first.json["secret"]) == 64
    again = PosClient.for_flask(client).activate(created["activation_code"])
    assert again.status == 401 and again.error_code == "ACTIVATION_CODE_INVALID"


def test_an_activation_code_expires_after_24_hours(client, admin_headers, store):
    with frozen(datetime(2026, 11, 20, 8, 0, tzinfo=UTC)):
        created = new_terminal(client, admin_headers, "SH001")
        advance(timedelta(hours=24, seconds=1))
        response = PosClient.for_flask(client).activate(created["activation_code"])
    assert response.status == 401 and response.error_code == "ACTIVATION_CODE_EXPIRED"


def test_a_correctly_signed_request_is_accepted(till):
    response = till.send_events([sale("S1", 1000)])
    assert response.status == 200
    assert response.json["results"][0]["status"] == "accepted"


def _tampered(till: PosClient, **change: str):
    """Sign a sale upload, then change one part of what is sent."""
    body = till.encode({"events": [sale("S-T", 1000)]})
    query = "batch=1"
    headers = till.signed_headers("POST", change.get("signed_path", "/pos/v1/events"), query, body)
    if "body" in change:
        body = till.encode({"events": [sale("S-T", 99999)]})
    query = change.get("query", query)
    if "timestamp" in change:
        headers["X-Timestamp"] = change["timestamp"]
    return till.send("POST", "/pos/v1/events", body, headers, query)


@pytest.mark.parametrize(
    "change",
    [
        {"body": "other"},
        {"signed_path": "/pos/v1/redemptions"},
        {"query": "batch=2"},
        {"query": ""},
        {"timestamp": "1"},
    ],
    ids=["body", "path", "query", "query-removed", "timestamp"],
)
def test_tampering_with_any_signed_part_is_refused_with_no_state_change(till, change):
    response = _tampered(till, **change)
    expected = "STALE_TIMESTAMP" if "timestamp" in change else "BAD_SIGNATURE"
    assert response.status == 401 and response.error_code == expected
    assert sale_count() == 0


def test_a_timestamp_changed_within_the_window_breaks_the_signature(till):
    body = till.encode({"events": [sale("S-W", 500)]})
    headers = till.signed_headers("POST", "/pos/v1/events", "", body)
    headers["X-Timestamp"] = str(int(headers["X-Timestamp"]) - 10)
    response = till.send("POST", "/pos/v1/events", body, headers)
    assert response.status == 401 and response.error_code == "BAD_SIGNATURE"
    assert sale_count() == 0


def test_a_request_older_than_300_seconds_is_stale_even_if_correctly_signed(till):
    body = till.encode({"events": [sale("S-OLD", 500)]})
    old = int(utcnow().timestamp()) - 301
    headers = till.signed_headers("POST", "/pos/v1/events", "", body, timestamp=old)
    response = till.send("POST", "/pos/v1/events", body, headers)
    assert response.status == 401 and response.error_code == "STALE_TIMESTAMP"
    assert sale_count() == 0


def test_a_replayed_request_is_refused_as_nonce_reused(till):
    body = till.encode({"events": [sale("S-R", 500)]})
    headers = till.signed_headers("POST", "/pos/v1/events", "", body)
    assert till.send("POST", "/pos/v1/events", body, headers).status == 200
    replay = till.send("POST", "/pos/v1/events", body, headers)
    assert replay.status == 401 and replay.error_code == "NONCE_REUSED"
    assert sale_count() == 1


def test_a_bad_signature_does_not_burn_the_nonce(till):
    body = till.encode({"events": [sale("S-N", 500)]})
    headers = till.signed_headers("POST", "/pos/v1/events", "", body, nonce="nonce-12345")
    forged = {**headers, "X-Signature": "0" * 64}
    assert till.send("POST", "/pos/v1/events", body, forged).error_code == "BAD_SIGNATURE"
    assert till.send("POST", "/pos/v1/events", body, headers).status == 200


def test_missing_headers_and_unknown_terminals_are_refused(till):
    body = till.encode({"events": [sale("S-M", 500)]})
    bare = till.send("POST", "/pos/v1/events", body, {})
    assert bare.status == 401 and bare.error_code == "SIGNATURE_HEADERS_MISSING"
    headers = till.signed_headers("POST", "/pos/v1/events", "", body)
    headers["X-Terminal-Id"] = "TDEADBEEF"
    unknown = till.send("POST", "/pos/v1/events", body, headers)
    assert unknown.status == 401 and unknown.error_code == "UNKNOWN_TERMINAL"
    assert sale_count() == 0


def test_a_terminal_signing_with_another_terminals_secret_is_refused(
    client, admin_headers, store, till
):
    make_store(client, admin_headers, "BJ001")
    other = signed_client(client, admin_headers, "BJ001")
    other.terminal_id = till.terminal_id  # claims to be the SH001 till, signs with its own key
    response = other.send_events([sale("S-X", 500)])
    assert response.status == 401 and response.error_code == "BAD_SIGNATURE"
    assert sale_count() == 0


def test_a_revoked_terminal_is_refused_and_cannot_be_rotated(client, admin_headers, till):
    response = client.post(f"/admin/v1/terminals/{till.terminal_id}/revoke", headers=admin_headers)
    assert response.status_code == 200 and response.get_json()["status"] == "revoked"
    refused = till.send_events([sale("S-V", 500)])
    assert refused.status == 401 and refused.error_code == "TERMINAL_REVOKED"
    rotate = client.post(f"/admin/v1/terminals/{till.terminal_id}/rotate", headers=admin_headers)
    assert rotate.status_code == 401 and rotate.get_json()["error"]["code"] == "TERMINAL_REVOKED"
    assert sale_count() == 0


def test_rotation_stops_the_old_secret_at_once_and_the_new_code_gives_a_new_one(
    client, admin_headers, till
):
    old_secret = till.secret
    response = client.post(f"/admin/v1/terminals/{till.terminal_id}/rotate", headers=admin_headers)
    assert response.status_code == 200
    rotated = response.get_json()
    assert rotated["status"] == "pending"
    refused = till.send_events([sale("S-O", 500)])
    assert refused.status == 401 and refused.error_code == "TERMINAL_NOT_ACTIVE"
    assert till.activate(rotated["activation_code"]).status == 201
    assert till.secret != old_secret
    assert till.send_events([sale("S-O", 500)]).status == 200


def test_admin_terminal_endpoints_need_an_admin_token(client, till):
    response = client.post(f"/admin/v1/terminals/{till.terminal_id}/revoke")
    assert response.status_code == 401


def test_terminal_secrets_are_stored_encrypted(till):
    from app.stores.models import Terminal

    stored = db.session.scalar(select(Terminal.secret_encrypted))
    assert stored and till.secret not in stored


def test_the_openapi_document_describes_the_pos_protocol(client):
    spec = client.get("/openapi.json").get_json()
    assert "/pos/v1/events" in spec["paths"]
    assert "/pos/v1/redemptions/{redemption_id}" in spec["paths"]
    assert "posSignature" in spec["components"]["securitySchemes"]
    assert "PosSaleEvent" in spec["components"]["schemas"]
    tag = next(t for t in spec["tags"] if t["name"] == "pos")
    assert "POINTS_REDEEM_FEN_PER_POINT" in tag["description"]
    assert "NONCE_REUSED" in tag["description"]


def test_the_integrators_guide_worked_example_signs_as_documented():
    from pos_adapter.signing import sign

    body = (
        b'{"events":[{"type":"sale","sale_id":"20261120-0001",'
        b'"occurred_at":"2026-11-20T16:02:12+08:00","total_fen":3800,"paid_fen":3800,'
        b'"member":{"phone":"13812345678"},'
        b'"lines":[{"sku":"6901234567890","qty":2,"amount_fen":3800}]}]}'
    )
    secret = "3f6c1b0e9a7d4c2e8b5a1f0d6c3e9b7a2d4f6e8c0a1b3d5f7e9c2a4b6d8f0e1c"
    signature = sign(secret, "POST", "/pos/v1/events", "", "1795161732", "k3JH9sd0Qw81mZxa", body)
    assert signature == "a08df4a9b44bc829344fd8a83faa9c5c08434b2ad265db3435dcc03cd61555c2"


def test_revoking_or_rotating_an_unknown_terminal_is_not_found(client, admin_headers):
    for action in ("revoke", "rotate"):
        response = client.post(f"/admin/v1/terminals/TNOPE/{action}", headers=admin_headers)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "TERMINAL_NOT_FOUND"


# Each process caches the terminals it verified (app/pos/terminals.py). Another gunicorn
# worker is modelled by putting back this process's cache as it was before a change: that
# worker never saw the change, only the token in Redis that the change replaced.


def _cache(app) -> dict:
    return app.extensions["huiyuan_terminal_cache"]


def _terminal_reads_of_next_request(till: PosClient) -> int:
    """Send a sale (verifying the terminal), then another: the terminal statements it ran."""
    from sqlalchemy import event

    assert till.send_events([sale("S-C1", 500)]).status == 200
    seen: list[str] = []

    def listen(conn, cursor, statement, *args):
        if "terminals" in statement:
            seen.append(statement)

    engine = db.engines[None]
    event.listen(engine, "before_cursor_execute", listen)
    try:
        assert till.send_events([sale("S-C2", 500)]).status == 200
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert sale_count() == 2
    return len(seen)


def test_a_verified_terminal_is_not_read_again_on_its_next_request(till):
    assert _terminal_reads_of_next_request(till) == 0


def test_a_revocation_reaches_a_process_that_cached_the_terminal(app, client, admin_headers, till):
    assert till.send_events([sale("S-W1", 500)]).status == 200
    other_worker = dict(_cache(app))
    response = client.post(f"/admin/v1/terminals/{till.terminal_id}/revoke", headers=admin_headers)
    assert response.status_code == 200
    _cache(app).update(other_worker)  # a worker that still holds the terminal as active
    refused = till.send_events([sale("S-W2", 500)])
    assert refused.status == 401 and refused.error_code == "TERMINAL_REVOKED"
    assert sale_count() == 1


def test_a_rotation_reaches_a_process_holding_the_old_secret(app, client, admin_headers, till):
    assert till.send_events([sale("S-R1", 500)]).status == 200
    old = PosClient.for_flask(client, clock=lambda: utcnow().timestamp())
    old.terminal_id, old.secret = till.terminal_id, till.secret
    other_worker = dict(_cache(app))
    rotated = client.post(f"/admin/v1/terminals/{till.terminal_id}/rotate", headers=admin_headers)
    assert till.activate(rotated.get_json()["activation_code"]).status == 201
    _cache(app).update(other_worker)
    stale = old.send_events([sale("S-R2", 500)])
    assert stale.status == 401 and stale.error_code == "BAD_SIGNATURE"
    _cache(app).update(other_worker)
    assert till.send_events([sale("S-R3", 500)]).status == 200  # the new secret, read again
    assert sale_count() == 2


def test_an_emptied_redis_makes_every_process_read_its_terminals_again(app, till):
    from app.extensions import redis_store
    from app.stores.models import Terminal

    assert till.send_events([sale("S-F1", 500)]).status == 200
    db.session.execute(db.update(Terminal).values(status="revoked"))  # by hand, behind the app
    db.session.commit()
    assert till.send_events([sale("S-F2", 500)]).status == 200  # cached: not seen yet
    redis_store.client.flushdb()  # a Redis restarted empty
    refused = till.send_events([sale("S-F3", 500)])
    assert refused.status == 401 and refused.error_code == "TERMINAL_REVOKED"


def test_with_no_cache_age_every_request_reads_its_terminal(app, till, monkeypatch):
    monkeypatch.setitem(app.config, "TERMINAL_CACHE_SECONDS", 0)
    assert _terminal_reads_of_next_request(till) == 1
