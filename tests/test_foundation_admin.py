from sqlalchemy import select

from app.admin.models import AdminToken
from app.common.crypto import hash_token
from app.extensions import db
from app.stores.models import Clerk, Terminal
from tests.test_foundation_http import assert_error


def test_create_token_cli_prints_the_token_once_on_the_last_line_and_stores_only_its_hash(app):
    result = app.test_cli_runner().invoke(args=["admin", "create-token", "ops"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("hya_") and len(token) > 40
    stored = db.session.execute(select(AdminToken).where(AdminToken.name == "ops")).scalar_one()
    assert stored.token_hash == hash_token(token)
    assert token not in stored.token_hash


def test_admin_endpoints_refuse_missing_and_wrong_tokens(client):
    assert_error(client.get("/admin/v1/stores"), 401, "AUTH_REQUIRED")
    assert_error(
        client.get("/admin/v1/stores", headers={"Authorization": "Bearer nope"}),
        401,
        "INVALID_TOKEN",
    )


def test_revoked_token_is_refused(client, admin_token, admin_headers):
    from app.common.clock import utcnow

    db.session.execute(select(AdminToken)).scalar_one().revoked_at = utcnow()
    db.session.commit()
    assert_error(client.get("/admin/v1/stores", headers=admin_headers), 401, "INVALID_TOKEN")


def test_stores_are_created_listed_and_paginated(client, admin_headers):
    for i in range(5):
        response = client.post(
            "/admin/v1/stores", json={"code": f"S{i}", "name": f"店{i}"}, headers=admin_headers
        )
        assert response.status_code == 201
        assert response.get_json()["code"] == f"S{i}"
    page1 = client.get("/admin/v1/stores?limit=3", headers=admin_headers).get_json()
    assert [s["code"] for s in page1["items"]] == ["S0", "S1", "S2"]
    page2 = client.get(
        f"/admin/v1/stores?limit=3&cursor={page1['next_cursor']}", headers=admin_headers
    ).get_json()
    assert [s["code"] for s in page2["items"]] == ["S3", "S4"]
    assert page2["next_cursor"] is None


def test_a_store_code_is_unique(client, admin_headers, store):
    assert_error(
        client.post(
            "/admin/v1/stores", json={"code": "SH001", "name": "again"}, headers=admin_headers
        ),
        409,
        "STORE_EXISTS",
    )


def test_bad_cursor_is_a_clear_error(client, admin_headers):
    assert_error(
        client.get("/admin/v1/stores?cursor=%%%", headers=admin_headers), 422, "INVALID_CURSOR"
    )


def test_terminal_gets_a_single_use_activation_code_stored_only_as_a_hash(
    client, admin_headers, store
):
    response = client.post(
        "/admin/v1/stores/SH001/terminals", json={"name": "till 1"}, headers=admin_headers
    )
    assert response.status_code == 201
    body = response.get_json()
    terminal = db.session.execute(
        select(Terminal).where(Terminal.terminal_id == body["terminal_id"])
    ).scalar_one()
    assert terminal.status == "pending"
    assert terminal.activation_code_hash == hash_token(body["activation_code"])
    assert terminal.secret_encrypted is None


def test_terminal_for_unknown_store_is_404(client, admin_headers):
    assert_error(
        client.post("/admin/v1/stores/NOPE/terminals", json={"name": "t"}, headers=admin_headers),
        404,
        "STORE_NOT_FOUND",
    )


def test_clerk_password_is_hashed_and_never_returned(client, admin_headers, store):
    response = client.post(
        "/admin/v1/stores/SH001/clerks",
        json={"username": "amy", "password": "s3cret-pass", "name": "Amy"},
        headers=admin_headers,
    )
    assert response.status_code == 201
    assert "password" not in response.get_json()
    assert "s3cret-pass" not in response.get_data(as_text=True)
    clerk = db.session.execute(select(Clerk)).scalar_one()
    assert clerk.password_hash.startswith("scrypt:")
    assert_error(
        client.post(
            "/admin/v1/stores/SH001/clerks",
            json={"username": "amy", "password": "another-pass", "name": "A"},
            headers=admin_headers,
        ),
        409,
        "USERNAME_TAKEN",
    )


def test_demo_seed_creates_the_brand_once(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed", "--if-empty"])
    assert first.exit_code == 0, first.output
    assert "SH001" in first.output and "HZ001" in first.output
    second = runner.invoke(args=["demo", "seed", "--if-empty"])
    assert "nothing seeded" in second.output
    from app.stores.models import Store

    assert db.session.query(Store).count() == 3
    assert db.session.query(Terminal).count() == 3
    assert {s.city for s in db.session.query(Store)} == {"上海", "杭州"}
