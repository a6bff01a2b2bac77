"""Clerk login: rate limit per username and IP, lockout, short-lived revocable tokens."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.clerks.auth import LOCKOUT_AFTER, LOGIN_ATTEMPTS
from app.common.clock import advance, frozen
from app.extensions import db
from app.stores import services as stores
from app.stores.models import Clerk
from tests.test_foundation_http import assert_error

PASSWORD = "counter-pass-1"
T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def make_clerk(store_code: str = "SH001", username: str = "lily") -> Clerk:
    if stores.find_store_by_code(store_code) is None:
        stores.create_store(store_code, f"店{store_code}", "上海")
    return stores.create_clerk(store_code, username, PASSWORD, f"导购{username}")


def login(client, username: str = "lily", password: str = PASSWORD, ip: str = "10.0.0.1"):
    return client.post(
        "/clerk/v1/login",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def clerk_headers(client, username: str = "lily") -> dict[str, str]:
    response = login(client, username)
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def test_login_returns_a_token_acting_for_the_clerks_store(client):
    make_clerk()
    body = login(client).get_json()
    assert body["store"] == "SH001" and body["clerk"]["username"] == "lily"
    assert body["token"].startswith("hyc_")
    me = client.get("/clerk/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.get_json()["store"] == "SH001"


def test_wrong_password_and_unknown_user_get_the_same_answer(client):
    make_clerk()
    wrong = assert_error(login(client, password="nope-nope"), 401, "INVALID_CREDENTIALS")
    unknown = assert_error(login(client, username="ghost"), 401, "INVALID_CREDENTIALS")
    assert wrong["message"] == unknown["message"]


def test_repeated_failures_lock_the_account_even_for_the_right_password(client):
    clerk = make_clerk()
    with frozen(T0):
        for i in range(LOCKOUT_AFTER):
            assert_error(
                login(client, password="wrong-pass", ip=f"10.0.1.{i}"), 401, "INVALID_CREDENTIALS"
            )
        assert_error(login(client, ip="10.0.2.1"), 403, "ACCOUNT_LOCKED")
        advance(timedelta(minutes=16))
        assert login(client, ip="10.0.2.1").status_code == 200
    db.session.expire_all()
    assert db.session.get(Clerk, clerk.id).failed_logins == 0


def test_a_success_resets_the_failure_count(client):
    make_clerk()
    for _ in range(LOCKOUT_AFTER - 1):
        login(client, password="wrong-pass")
    assert login(client).status_code == 200
    for _ in range(LOCKOUT_AFTER - 1):
        login(client, password="wrong-pass")
    assert login(client).status_code == 200


def test_login_attempts_are_rate_limited_per_username_and_ip(client):
    for _ in range(LOGIN_ATTEMPTS):
        assert_error(login(client, username="ghost"), 401, "INVALID_CREDENTIALS")
    error = assert_error(login(client, username="ghost"), 429, "LOGIN_RATE_LIMITED")
    assert error["details"]["retry_after_seconds"] > 0
    # the username is the credential: another address does not reset its count
    assert_error(login(client, username="ghost", ip="10.9.9.9"), 429, "LOGIN_RATE_LIMITED")
    # another username is counted apart (until the address's own limit, see test_trust_*)
    assert_error(login(client, username="ghost2"), 401, "INVALID_CREDENTIALS")


def test_tokens_expire_after_a_shift(client):
    make_clerk()
    with frozen(T0):
        headers = clerk_headers(client)
        advance(timedelta(hours=7, minutes=59))
        assert client.get("/clerk/v1/me", headers=headers).status_code == 200
        advance(timedelta(minutes=2))
        assert_error(client.get("/clerk/v1/me", headers=headers), 401, "TOKEN_EXPIRED")


def test_logout_revokes_only_that_token(client):
    make_clerk()
    first, second = clerk_headers(client), clerk_headers(client)
    assert client.post("/clerk/v1/logout", headers=first).status_code == 204
    assert_error(client.get("/clerk/v1/me", headers=first), 401, "INVALID_TOKEN")
    assert client.get("/clerk/v1/me", headers=second).status_code == 200


def test_hq_revokes_every_session_and_lifts_a_lockout(client, admin_headers):
    clerk = make_clerk()
    headers = clerk_headers(client)
    revoked = client.post(f"/admin/v1/clerks/{clerk.id}/revoke-sessions", headers=admin_headers)
    assert revoked.get_json() == {"revoked": 1}
    assert_error(client.get("/clerk/v1/me", headers=headers), 401, "INVALID_TOKEN")
    for _ in range(LOCKOUT_AFTER):
        login(client, password="wrong-pass")
    assert_error(login(client), 403, "ACCOUNT_LOCKED")
    assert (
        client.post(f"/admin/v1/clerks/{clerk.id}/unlock", headers=admin_headers).status_code == 200
    )
    assert login(client).status_code == 200


def test_a_disabled_clerk_or_one_moved_to_another_store_loses_their_tokens(client):
    clerk = make_clerk()
    other = stores.create_store("SH002", "徐汇店")
    headers = clerk_headers(client)
    db.session.get(Clerk, clerk.id).store_id = other.id
    db.session.commit()
    assert_error(client.get("/clerk/v1/me", headers=headers), 401, "INVALID_TOKEN")
    headers = clerk_headers(client)
    assert client.get("/clerk/v1/me", headers=headers).get_json()["store"] == "SH002"
    db.session.get(Clerk, clerk.id).status = "disabled"
    db.session.commit()
    assert_error(client.get("/clerk/v1/me", headers=headers), 401, "INVALID_TOKEN")
    assert_error(login(client), 403, "CLERK_DISABLED")


def test_passwords_are_stored_as_scrypt_hashes(client):
    make_clerk()
    stored = db.session.scalar(select(Clerk.password_hash))
    assert stored.startswith("scrypt:") and PASSWORD not in stored
