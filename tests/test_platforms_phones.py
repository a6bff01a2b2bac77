"""Phone numbers from the mini-programs: WeChat's legacy encryptedData flow, Alipay's payload."""

from __future__ import annotations

import pytest

from tests import platform_kit
from tests.payment_asserts import counts

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins


def login(client, wechat, openid="oLEGACY"):
    response = client.post("/mp/v1/wechat/login", json={"code": wechat.login_code(openid)})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert "session_key" not in str(body)  # the session key never reaches the mini-program
    return {"Authorization": f"Bearer {body['token']}"}


def test_the_legacy_encrypted_data_flow_binds_the_phone(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    headers = login(client, wechat)
    payload = wechat.encrypted_phone("oLEGACY", "13812345678")
    response = client.post("/mp/v1/wechat/phone", json=payload, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["member"]["phone_masked"] == "138****5678"


def test_encrypted_data_for_another_app_is_refused(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    headers = login(client, wechat)
    payload = wechat.encrypted_phone("oLEGACY", "13812345678", appid="wxsomeoneelse00000")
    response = client.post("/mp/v1/wechat/phone", json=payload, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "WATERMARK_MISMATCH"
    assert counts()["identities"] == 1  # the openid only: no phone


def test_encrypted_data_from_an_old_session_or_garbage_is_a_4xx(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    headers = login(client, wechat)
    stale = wechat.encrypted_phone("oLEGACY", "13812345678")
    login(client, wechat)  # a new wx.login: a new session key on both sides
    fresh = wechat.encrypted_phone("oLEGACY", "13812345678")
    assert client.post("/mp/v1/wechat/phone", json=stale, headers=headers).status_code == 422
    garbage = {"encrypted_data": "bm90IGVuY3J5cHRlZA==", "iv": fresh["iv"]}
    bad = client.post("/mp/v1/wechat/phone", json=garbage, headers=headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "PHONE_DATA_INVALID"
    bad_iv = client.post("/mp/v1/wechat/phone", json={**fresh, "iv": "c2hvcnQ="}, headers=headers)
    assert bad_iv.status_code == 422
    ok = client.post("/mp/v1/wechat/phone", json=fresh, headers=headers)
    assert ok.status_code == 200, ok.get_json()


@pytest.mark.parametrize(
    "body",
    [
        {"encrypted_data": "abc"},
        {"iv": "abc"},
        {"code": "x", "encrypted_data": "abc", "iv": "abc"},
        {},
    ],
)
def test_the_phone_request_takes_one_flow_at_a_time(pay_app, standins, body):
    wechat, _ = standins
    client = pay_app.test_client()
    response = client.post("/mp/v1/wechat/phone", json=body, headers=login(client, wechat))
    assert response.status_code == 422


def test_without_a_kept_session_key_the_member_is_asked_to_log_in_again(pay_app, standins):
    from app.extensions import redis_store

    wechat, _ = standins
    client = pay_app.test_client()
    headers = login(client, wechat)
    payload = wechat.encrypted_phone("oLEGACY", "13812345678")
    for key in redis_store.client.scan_iter("huiyuan:wechat:*:session-key:*"):
        redis_store.client.delete(key)
    response = client.post("/mp/v1/wechat/phone", json=payload, headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "WECHAT_SESSION_REQUIRED"


@pytest.mark.parametrize("plain", [b"[1, 2]", b'"13812345678"', b"42", b"null"])
def test_an_alipay_payload_that_is_not_an_object_is_a_4xx(pay_app, standins, plain):
    _, alipay = standins
    client = pay_app.test_client()
    code = alipay.auth_code("2088000000000077", "0ALIOPENID77")
    token = client.post("/mp/v1/alipay/login", json={"auth_code": code}).get_json()["token"]
    body = alipay.encrypted_response(plain)
    response = client.post(
        "/mp/v1/alipay/phone", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "ALIPAY_RESPONSE_INVALID"


def test_the_alipay_sandbox_phone_shortcut_exists_only_in_the_sandbox(pay_app, standins):
    _, alipay = standins
    client = pay_app.test_client()
    code = alipay.auth_code("2088000000000078")
    token = client.post("/mp/v1/alipay/login", json={"auth_code": code}).get_json()["token"]
    response = client.post(
        "/mp/v1/alipay/phone",
        json={"response": "sandbox-phone-13812345678"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (401, 422)  # not the sandbox: an undecryptable response
