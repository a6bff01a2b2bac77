"""Mini-program login and phone numbers through the real clients and the local stand-ins."""

from __future__ import annotations

import pytest

from app.platforms.alipay_standin import AlipayGatewayStandIn
from app.platforms.wechat import PlatformCallFailed, route_url, wechat_client
from tests import platform_kit
from tests.payment_asserts import counts
from tests.platform_kit import ALIPAY_APP_ID, keys, other_private, platform_config

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wechat_login(client, wechat, openid="oLOGIN1", unionid=None):
    response = client.post("/mp/v1/wechat/login", json={"code": wechat.login_code(openid, unionid)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_wechat_login_creates_the_member_once_and_the_token_acts_as_it(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    first = wechat_login(client, wechat, unionid="uUNION1")
    again = wechat_login(client, wechat, unionid="uUNION1")
    assert first["member"]["id"] == again["member"]["id"]
    assert first["member"]["identity_kinds"] == ["wechat_openid", "wechat_unionid"]
    me = client.get("/mp/v1/me", headers=bearer(again["token"]))
    assert me.status_code == 200 and me.get_json()["id"] == first["member"]["id"]
    assert counts()["members"] == 1


def test_a_wechat_login_code_works_once(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    code = wechat.login_code("oONCE")
    assert client.post("/mp/v1/wechat/login", json={"code": code}).status_code == 200
    again = client.post("/mp/v1/wechat/login", json={"code": code})
    assert again.status_code == 401
    assert again.get_json()["error"]["code"] == "WECHAT_CODE_INVALID"


def test_alipay_login_creates_a_member_with_user_id_and_open_id(pay_app, standins):
    _, alipay = standins
    client = pay_app.test_client()
    code = alipay.auth_code("2088000000000042", "0ALIOPENID42")
    response = client.post("/mp/v1/alipay/login", json={"auth_code": code})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["member"]["identity_kinds"] == ["alipay_open_id", "alipay_user_id"]
    bad = client.post("/mp/v1/alipay/login", json={"auth_code": code})  # used
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "ALIPAY_CODE_INVALID"


def test_an_alipay_gateway_answer_signed_with_another_key_is_refused(make_app, standins):
    wechat, _ = standins
    impostor = AlipayGatewayStandIn(
        ALIPAY_APP_ID, keys()["app"][1], other_private(), platform_kit.AES_KEY
    ).start()
    try:
        application = make_app(**platform_config(wechat.url, impostor.url))
        code = impostor.auth_code("2088000000000043")
        with application.app_context():
            response = application.test_client().post(
                "/mp/v1/alipay/login", json={"auth_code": code}
            )
        assert response.status_code == 502
        assert response.get_json()["error"]["code"] == "PLATFORM_ERROR"
        assert counts()["members"] == 0
    finally:
        impostor.stop()


def test_the_access_token_is_fetched_once_and_shared_between_processes(make_app, standins):
    wechat, alipay = standins
    apps = [make_app(**platform_config(wechat.url, alipay.url)) for _ in range(2)]
    for application in apps:  # two app instances: as two worker processes sharing Redis
        with application.app_context():
            for _ in range(2):
                wechat_login(application.test_client(), wechat, openid="oSHARED")
    assert wechat.token_fetches == 1


def test_an_invalidated_token_is_refreshed_once_and_the_call_retried(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    token = wechat_login(client, wechat)["token"]
    wechat.revoke_tokens()
    response = client.post(
        "/mp/v1/wechat/phone",
        json={"code": wechat.phone_code("13912345678")},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.get_json()
    assert wechat.token_fetches == 2


def test_every_wechat_request_goes_to_the_configured_base_and_nothing_else(pay_app, standins):
    wechat, _ = standins
    wechat_login(pay_app.test_client(), wechat)
    # the token (stable_token, not wechatpy's fixed cgi-bin/token URL) and the wxa group's own
    # base both reached the stand-in
    assert ("POST", "/cgi-bin/stable_token") in wechat.requests
    assert ("GET", "/cgi-bin/token") not in wechat.requests
    assert ("GET", "/sns/jscode2session") in wechat.requests
    client = wechat_client()
    with pytest.raises(PlatformCallFailed):
        client._http.get("https://example.com/steal")
    assert route_url("https://api.weixin.qq.com/sns/x?a=1", wechat.url) == wechat.url + "sns/x?a=1"


def test_wechat_phone_binding_checks_the_watermark_appid(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    token = wechat_login(client, wechat)["token"]
    foreign = wechat.phone_code("13912345678", appid="wxsomeoneelse00000")
    response = client.post("/mp/v1/wechat/phone", json={"code": foreign}, headers=bearer(token))
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "WATERMARK_MISMATCH"
    ok = client.post(
        "/mp/v1/wechat/phone",
        json={"code": wechat.phone_code("13912345678")},
        headers=bearer(token),
    )
    assert ok.get_json()["member"]["phone_masked"] == "139****5678"
    assert ok.get_json()["merged"] is False


def _alipay_token(client, alipay) -> str:
    code = alipay.auth_code("2088000000000044", "0ALIOPENID44")
    return client.post("/mp/v1/alipay/login", json={"auth_code": code}).get_json()["token"]


@pytest.mark.parametrize("signed", [True, False])
def test_alipay_phone_binding_decrypts_the_response(pay_app, standins, signed):
    _, alipay = standins
    client = pay_app.test_client()
    token = _alipay_token(client, alipay)
    body = alipay.phone_response("13712345678", signed=signed)
    response = client.post("/mp/v1/alipay/phone", json=body, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["member"]["phone_masked"] == "137****5678"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"sign": "Zm9yZ2Vk"}, 401, "ALIPAY_SIGN_INVALID"),
        ({"sign": "@@@"}, 401, "ALIPAY_SIGN_INVALID"),
        ({"response": "AAAAAAAAAAAAAAAAAAAAAA=="}, 401, "ALIPAY_SIGN_INVALID"),
        ({"response": "bm90IGVuY3J5cHRlZA==", "sign": None}, 422, "ALIPAY_RESPONSE_INVALID"),
    ],
)
def test_a_forged_or_garbled_alipay_phone_response_binds_nothing(
    pay_app, standins, change, status, code
):
    _, alipay = standins
    client = pay_app.test_client()
    token = _alipay_token(client, alipay)
    body = {**alipay.phone_response("13712345678"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = client.post("/mp/v1/alipay/phone", json=body, headers=bearer(token))
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert counts()["identities"] == 2  # the two Alipay ids, no phone


def test_the_member_code_is_issued_for_the_member(pay_app, standins):
    from app.members.codes import resolve_member_code

    wechat, _ = standins
    client = pay_app.test_client()
    login = wechat_login(client, wechat)
    response = client.get("/mp/v1/member-code", headers=bearer(login["token"]))
    assert response.status_code == 200
    assert resolve_member_code(response.get_json()["code"]) == login["member"]["id"]


def test_disabled_platforms_answer_503_platform_disabled(client):
    for path, kwargs in [
        ("/mp/v1/wechat/login", {"json": {"code": "x"}}),
        ("/mp/v1/alipay/login", {"json": {"auth_code": "x"}}),
        ("/payments/wechat/notify", {"data": b"<xml></xml>"}),
        ("/payments/wechat/refund-notify", {"data": b"<xml></xml>"}),
        ("/payments/wechat/v3/notify", {"data": b"{}"}),
        ("/payments/alipay/notify", {"data": {"a": "b"}}),
    ]:
        response = client.post(path, **kwargs)
        assert response.status_code == 503, path
        assert response.get_json()["error"]["code"] == "PLATFORM_DISABLED"
