"""Clerk QR attribution: a new member is attributed to the clerk and store; first one wins."""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from app.common.clock import advance, frozen
from app.db import unit_of_work
from app.extensions import db
from app.members.services import add_identity, create_member, get_member
from app.stores.models import Clerk
from miniprogram_api.auth import issue_member_token
from tests.test_clerk_auth import clerk_headers, make_clerk
from tests.test_foundation_http import assert_error

T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def payload_of(client, username):
    return client.get("/clerk/v1/me", headers=clerk_headers(client, username)).get_json()[
        "qr_payload"
    ]


def attribute(client, member_id, payload):
    token = issue_member_token(member_id, "wechat")
    return client.post(
        "/mp/v1/attribution",
        json={"payload": payload},
        headers={"Authorization": f"Bearer {token}"},
    )


def new_member(**kwargs):
    with unit_of_work():
        return create_member(source="wechat_pay", **kwargs).id


def test_the_qr_payload_is_short_signed_and_names_the_clerk(client):
    make_clerk("SH001", "lily")
    payload = payload_of(client, "lily")
    assert len(payload) <= 32  # fits a mini-program code's scene
    member_id = new_member()
    for forged in (
        payload[:-1] + ("A" if payload[-1] != "A" else "B"),
        "2." + payload[2:],
        "",
        "x",
        "é.abc",
        payload + ".",
    ):
        assert_error(
            attribute(client, member_id, forged),
            422,
            "VALIDATION_ERROR" if not forged else "INVALID_ATTRIBUTION_PAYLOAD",
        )


def test_a_new_member_is_attributed_to_the_clerk_and_store_and_the_first_wins(client):
    make_clerk("SH001", "lily")
    make_clerk("SH002", "mei")
    lily, mei = payload_of(client, "lily"), payload_of(client, "mei")
    member_id = new_member()
    first = attribute(client, member_id, lily).get_json()
    assert first["status"] == "attributed" and first["store"] == "SH001"
    again = attribute(client, member_id, mei).get_json()
    assert again == {**first, "status": "already_attributed"}
    assert_error(attribute(client, member_id, "nope"), 422, "INVALID_ATTRIBUTION_PAYLOAD")
    assert_error(client.post("/mp/v1/attribution", json={"payload": lily}), 401, "AUTH_REQUIRED")


def test_only_a_member_who_just_joined_is_attributed_binding_a_phone_is_not_joining(client):
    make_clerk("SH001", "lily")
    lily = payload_of(client, "lily")
    with frozen(T0):
        old = new_member()
        advance(timedelta(days=3))
        assert attribute(client, old, lily).get_json()["status"] == "not_eligible"
        with unit_of_work():
            add_identity(get_member(old), "phone", "13812345678")
        assert attribute(client, old, lily).get_json()["status"] == "not_eligible"
        assert attribute(client, new_member(), lily).get_json()["status"] == "attributed"


def test_a_disabled_clerks_code_attributes_nobody(client):
    clerk = make_clerk("SH001", "lily")
    lily = payload_of(client, "lily")
    db.session.get(Clerk, clerk.id).status = "disabled"
    db.session.commit()
    assert_error(attribute(client, new_member(), lily), 422, "INVALID_ATTRIBUTION_PAYLOAD")


def test_hq_reports_new_members_per_clerk_and_store(client, admin_headers):
    lily_clerk = make_clerk("SH001", "lily")
    make_clerk("SH001", "ann")
    mei_clerk = make_clerk("SH002", "mei")
    payloads = {u: payload_of(client, u) for u in ("lily", "ann", "mei")}
    hq = client.get(f"/admin/v1/clerks/{lily_clerk.id}/qr-payload", headers=admin_headers)
    assert hq.get_json()["qr_payload"] == payloads["lily"]
    with frozen(T0):
        for username in ("lily", "lily", "mei"):
            attribute(client, new_member(), payloads[username])
    with frozen(T0 + timedelta(days=40)):
        attribute(client, new_member(), payloads["lily"])
    since, until = quote(T0.isoformat()), quote((T0 + timedelta(days=30)).isoformat())
    report = client.get(
        f"/admin/v1/attribution-report?since={since}&until={until}", headers=admin_headers
    ).get_json()["items"]
    assert [(r["store"], r["clerk_id"], r["new_members"]) for r in report] == [
        ("SH001", lily_clerk.id, 2),
        ("SH002", mei_clerk.id, 1),
    ]
    naive = client.get(
        f"/admin/v1/attribution-report?since=2026-06-01T00:00:00&until={until}",
        headers=admin_headers,
    )
    assert_error(naive, 422, "VALIDATION_ERROR")
