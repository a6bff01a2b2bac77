"""Issue 14's hostile probes, one regression test (or more) each: phones leaking to clerks,
Unicode digits, hostile input (deep JSON, lone surrogates, odd timestamps, year 9999, huge
bodies), secrets, demo seeding, admin tokens, attribution farming, sessions and throttles."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from app.common.clock import advance, frozen
from app.config import Config, ConfigError
from app.db import unit_of_work
from app.extensions import db
from app.members.binding import bind_phone
from app.members.models import Member
from app.members.services import create_member
from miniprogram_api.auth import issue_member_token
from tests.pos_support import sale, signed_client, statuses
from tests.test_clerk_attribution import T0, attribute, new_member, payload_of
from tests.test_clerk_auth import PASSWORD, clerk_headers, login, make_clerk
from tests.test_foundation_http import assert_error

PHONE = "13912345678"
SPELLINGS = [
    "139 1234 5678",
    "139-1234-5678",
    "139.1234.5678",
    "+86 139 1234 5678",
    "+8613912345678",
    "１３９１２３４５６７８",
    "139\u200b1234\u200b5678",
    "139\ufeff1234\u20605678",
]


def digits(text: str) -> str:
    import unicodedata

    return "".join(str(unicodedata.digit(c)) for c in text if c.isdigit())


def member_headers(member_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_member_token(member_id, 'wechat')}"}


# --- phones leak to clerks ----------------------------------------------------------------------
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_phone_in_a_note_or_a_member_name_comes_back_masked_in_any_spelling(client, spelling):
    make_clerk("SH001", "lily")
    with unit_of_work():
        member_id = create_member(source="test", phone="13800000001", name=f"王 {spelling}").id
    headers = clerk_headers(client, "lily")
    view = client.post("/clerk/v1/members/lookup", json={"phone": "13800000001"}, headers=headers)
    assert view.status_code == 200
    assert PHONE not in digits(view.get_json()["name"])
    note = client.post(
        f"/clerk/v1/members/{member_id}/notes", json={"text": f"回电 {spelling}"}, headers=headers
    )
    assert note.status_code == 201 and PHONE not in digits(note.get_json()["text"])
    shown = client.get(f"/clerk/v1/members/{member_id}", headers=headers).get_json()
    assert PHONE not in digits(json.dumps(shown, ensure_ascii=False))


def test_a_clerk_of_another_store_sees_old_notes_with_a_phone_masked(client):
    """Notes stored before masking knew every spelling are masked on the way out too."""
    from app.clerks.models import ClerkNote

    lily, mei = make_clerk("SH001", "lily"), make_clerk("SH002", "mei")
    with unit_of_work():
        member_id = create_member(source="test", phone="13800000001").id
        db.session.add(
            ClerkNote(
                member_id=member_id,
                clerk_id=lily.id,
                store_id=lily.store_id,
                text="客户 139 1234 5678 (old note)",
            )
        )
    assert mei.store_id != lily.store_id
    headers = clerk_headers(client, "mei")
    view = client.post("/clerk/v1/members/lookup", json={"phone": "13800000001"}, headers=headers)
    text = view.get_json()["notes"][0]["text"]
    assert PHONE not in digits(text) and "****" in text


# --- unicode digits -----------------------------------------------------------------------------
def test_full_width_digits_name_the_same_member_as_ascii_ones(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    wide = till.identify(phone="13８００００００１２", register=True, consent=True)
    assert wide.status == 200, wide.json
    ascii_ = till.identify(phone="13800000012", register=True, consent=True)
    assert ascii_.json["member_id"] == wide.json["member_id"]
    assert ascii_.json["registered"] is False
    assert db.session.scalars(select(Member.phone)).all() == ["13800000012"]


# --- hostile input ------------------------------------------------------------------------------
def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("path", ["/clerk/v1/login", "/admin/v1/stores", "/pos/v1/activate"])
def test_deep_json_is_a_400_not_a_500(client, admin_headers, path):
    body = '{"username": ' + deep(5000) + ', "password": "x"}'
    response = client.post(path, data=body, content_type="application/json", headers=admin_headers)
    assert response.status_code == 400, response.get_data(as_text=True)[:200]
    assert response.get_json()["error"]["code"] == "JSON_TOO_DEEP"


def test_deep_json_on_clerk_tags_is_a_400(client):
    make_clerk("SH001", "lily")
    headers = clerk_headers(client, "lily")
    body = '{"add": ' + deep(3000) + "}"
    response = client.post(
        "/clerk/v1/members/1/tags", data=body, content_type="application/json", headers=headers
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "JSON_TOO_DEEP"


def test_deep_json_on_pos_events_is_a_400(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    body = ('{"events": [' + deep(3000) + "]}").encode()
    response = till.send(
        "POST", "/pos/v1/events", body, till.signed_headers("POST", "/pos/v1/events", "", body)
    )
    assert response.status == 400 and response.json["error"]["code"] == "JSON_TOO_DEEP"


def test_a_lone_surrogate_in_a_note_is_a_422(client):
    make_clerk("SH001", "lily")
    with unit_of_work():
        member_id = create_member(source="test", phone="13800000001").id
    headers = clerk_headers(client, "lily")
    client.post("/clerk/v1/members/lookup", json={"phone": "13800000001"}, headers=headers)
    response = client.post(
        f"/clerk/v1/members/{member_id}/notes",
        data='{"text": "hi \\ud800 there"}',
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_a_lone_surrogate_in_a_sku_rejects_that_event_only(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    bad = sale("S1", 1000, lines=[{"sku": "\ud800", "qty": 1, "amount_fen": 1000}])
    body = json.dumps({"events": [bad, sale("S2", 1000)]}).encode()  # ASCII: "\ud800" escaped
    headers = till.signed_headers("POST", "/pos/v1/events", "", body)
    response = till.send("POST", "/pos/v1/events", body, headers)
    assert statuses(response) == ["rejected", "accepted"]
    assert response.json["results"][0]["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("timestamp", ["²", "١٢٣", "１７００００００００", "1e9", "-1", "9" * 40])
def test_an_odd_x_timestamp_is_a_401(client, admin_headers, store, timestamp):
    till = signed_client(client, admin_headers, "SH001")
    body = b'{"events": []}'
    headers = {**till.signed_headers("POST", "/pos/v1/events", "", body), "X-Timestamp": timestamp}
    response = till.send("POST", "/pos/v1/events", body, headers)
    assert response.status == 401
    assert response.json["error"]["code"] in ("SIGNATURE_HEADERS_INVALID", "STALE_TIMESTAMP")


@pytest.mark.parametrize(
    "when", ["9999-12-31T23:59:59-12:00", "9999-12-31T00:00:00+08:00", "0001-01-01T00:00:00+14:00"]
)
def test_a_sale_in_year_9999_or_year_1_is_rejected_alone(client, admin_headers, store, when):
    till = signed_client(client, admin_headers, "SH001")
    member = {"phone": "13800000001"}
    response = till.send_events(
        [sale("S1", 1000, occurred_at=when, member=member), sale("S2", 1000, member=member)]
    )
    assert statuses(response) == ["rejected", "accepted"]
    assert "occurred_at" in response.json["results"][0]["error"]["details"]


def test_a_body_over_the_limit_is_a_413_in_the_error_shape_before_anything_is_read(client):
    big = b"[" + b"1," * (2 * 1024 * 1024) + b"1]"  # 4 MiB and more, no credentials
    response = client.post("/clerk/v1/login", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    claimed = client.post(
        "/pos/v1/events",
        data=b"{}",
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(100 * 1024 * 1024)},
    )
    assert claimed.status_code == 413


def test_the_body_limit_is_a_setting(make_app):
    small = make_app(MAX_REQUEST_BYTES=2048)
    response = small.test_client().post(
        "/clerk/v1/login", json={"username": "x" * 3000, "password": "y"}
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_gunicorns_own_refusals_are_json_in_the_error_shape():
    from app.common.serving import json_error_response

    raw = json_error_response(414, "URI Too Long")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414") and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "URI_TOO_LONG"


# --- secrets ------------------------------------------------------------------------------------
STRONG = "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789"


def test_without_huiyuan_env_against_postgresql_the_app_refuses_the_development_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Config.from_env(env={"DATABASE_URL": "postgresql+psycopg://u@db/huiyuan"})
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Config.from_env(
            env={
                "HUIYUAN_ENV": "production",
                "DATABASE_URL": "sqlite:////tmp/x.db",
                "REDIS_URL": "redis://x",
            }
        )
    assert Config.from_env(env={}).SECRET_KEY is None  # development on SQLite: allowed


def test_a_token_forged_with_the_development_key_does_not_work(client):
    from itsdangerous import URLSafeTimedSerializer

    from app.config import DEVELOPMENT_SECRET_KEY

    with unit_of_work():
        member_id = create_member(source="test").id
    forged = URLSafeTimedSerializer(DEVELOPMENT_SECRET_KEY, salt="huiyuan-member-token").dumps(
        {"m": member_id, "c": "wechat"}
    )
    response = client.get("/mp/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "key",
    [
        " " * 32,
        " " * 40,
        "a" * 64,
        "abcabcabcabcabcabcabcabcabcabcabcabc",
        "short-key",
        " " + STRONG,
    ],
)
def test_a_weak_secret_key_is_refused_with_the_reason(key):
    with pytest.raises(ConfigError, match="SECRET_KEY is too weak"):
        Config.from_env(env={"SECRET_KEY": key})


def test_the_development_key_itself_is_refused_as_a_setting():
    from app.config import DEVELOPMENT_SECRET_KEY

    with pytest.raises(ConfigError):
        Config.from_env(env={"SECRET_KEY": DEVELOPMENT_SECRET_KEY})


def test_demo_seeding_is_refused_in_production(app):
    from app.cli import seed

    production = Config.from_env(env={}, ENV="testing", SECRET_KEY=STRONG)
    production.ENV = "production"  # the command reads the app's config
    app.config["HUIYUAN_CONFIG"], saved = production, app.config["HUIYUAN_CONFIG"]
    try:
        result = CliRunner().invoke(
            seed, [], obj=None, standalone_mode=False, catch_exceptions=True
        )
    finally:
        app.config["HUIYUAN_CONFIG"] = saved
    assert result.exception is not None and "refused in production" in str(result.exception)
    from app.stores.models import Clerk

    assert db.session.scalar(select(func.count()).select_from(Clerk)) == 0


def test_admin_tokens_can_be_listed_and_revoked(app, client):
    from app.admin.auth import create_admin_token

    token = create_admin_token("ops-laptop")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/admin/v1/stores", headers=headers).status_code == 200
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["admin", "list-tokens"])
    assert listed.exit_code == 0 and "ops-laptop" in listed.output and "active" in listed.output
    assert token not in listed.output
    token_id = listed.output.split("\t")[0]
    revoked = runner.invoke(args=["admin", "revoke-token", token_id])
    assert revoked.exit_code == 0, revoked.output
    assert_error(client.get("/admin/v1/stores", headers=headers), 401, "INVALID_TOKEN")
    assert "active" not in runner.invoke(args=["admin", "list-tokens"]).output.split("\n")[0]
    assert runner.invoke(args=["admin", "revoke-token", "999"]).exit_code != 0


def test_docs_are_off_in_production_unless_the_setting_allows_them(make_app):
    production = {
        "ENV": "production",
        "TESTING": False,
        "SECRET_KEY": STRONG,
        "REDIS_URL": "redis://127.0.0.1:6379/2",
    }
    off = make_app(**production).test_client()
    assert off.get("/openapi.json").status_code == 404
    assert off.get("/docs").status_code == 404
    on = make_app(**production, API_DOCS_IN_PRODUCTION=True).test_client()
    assert on.get("/openapi.json").status_code == 200


# --- attribution farming ------------------------------------------------------------------------
def test_a_fresh_login_then_a_qr_then_binding_an_old_members_phone_does_not_count(client):
    make_clerk("SH001", "lily")
    lily = payload_of(client, "lily")
    with frozen(T0):
        old = new_member(phone="13800000077")
        advance(timedelta(days=90))
        fresh = new_member()  # a fresh WeChat login
        assert attribute(client, fresh, lily).get_json()["status"] == "attributed"
        result = bind_phone(fresh, "13800000077", channel="wechat")
        assert result.member_id == old and result.merged_from == fresh
        from app.clerks.attribution import attribution_report

        report = attribution_report(T0, T0 + timedelta(days=100))
        assert report == []
        assert attribute(client, fresh, lily).get_json()["status"] == "not_eligible"


def test_two_new_members_merging_keep_the_attribution(client):
    make_clerk("SH001", "lily")
    lily = payload_of(client, "lily")
    with frozen(T0):
        first = new_member(phone="13800000078")
        advance(timedelta(hours=1))
        second = new_member()
        assert attribute(client, second, lily).get_json()["status"] == "attributed"
        bind_phone(second, "13800000078", channel="wechat")
        from app.clerks.models import MemberAttribution

        assert db.session.get(MemberAttribution, first) is not None


# --- sessions and throttling --------------------------------------------------------------------
def test_logout_ends_the_token_and_only_that_token(client):
    with unit_of_work():
        member_id = create_member(source="test").id
    first, second = member_headers(member_id), member_headers(member_id)
    import time

    time.sleep(1.1)  # tokens carry their issue second: make the second one different
    second = member_headers(member_id)
    assert first != second
    assert client.post("/mp/v1/logout", headers=first).status_code == 204
    assert_error(client.get("/mp/v1/me", headers=first), 401, "INVALID_TOKEN")
    assert client.get("/mp/v1/me", headers=second).status_code == 200


def test_password_spraying_across_usernames_from_one_address_is_throttled(client):
    from app.clerks.auth import LOGIN_FAILURES_PER_IP

    for n in range(LOGIN_FAILURES_PER_IP):
        assert login(client, username=f"user{n}", ip="10.7.7.7").status_code == 401
    assert_error(login(client, username="another", ip="10.7.7.7"), 429, "LOGIN_RATE_LIMITED")
    make_clerk("SH001", "lily")
    assert login(client, username="lily", password=PASSWORD, ip="10.8.8.8").status_code == 200


def test_failed_admin_tokens_are_throttled_per_address_and_per_token(client, admin_headers):
    for _ in range(5):
        bad = {"Authorization": "Bearer hya_wrong"}
        assert client.get("/admin/v1/stores", headers=bad).status_code == 401
    assert_error(
        client.get("/admin/v1/stores", headers={"Authorization": "Bearer hya_wrong"}),
        429,
        "AUTH_RATE_LIMITED",
    )
    for n in range(15):  # 20 failures from this address in all
        other = {"Authorization": f"Bearer hya_guess{n}"}
        assert client.get("/admin/v1/stores", headers=other).status_code == 401
    assert_error(
        client.get("/admin/v1/stores", headers={"Authorization": "Bearer hya_next"}),
        429,
        "AUTH_RATE_LIMITED",
    )
    ok = client.get(
        "/admin/v1/stores", headers=admin_headers, environ_base={"REMOTE_ADDR": "10.1.1.1"}
    )
    assert ok.status_code == 200


def test_activation_codes_cannot_be_guessed_in_bulk(client, admin_headers, store):
    from tests.pos_support import new_terminal

    for n in range(10):
        response = client.post("/pos/v1/activate", json={"activation_code": f"AAAA-BBBB-{n:04d}"})
        assert response.status_code == 401
    real = new_terminal(client, admin_headers, "SH001")["activation_code"]
    assert_error(
        client.post("/pos/v1/activate", json={"activation_code": real}),
        429,
        "ACTIVATION_RATE_LIMITED",
    )
    elsewhere = client.post(
        "/pos/v1/activate", json={"activation_code": real}, environ_base={"REMOTE_ADDR": "10.2.2.2"}
    )
    assert elsewhere.status_code == 201
