"""WeChat access tokens: stable_token shared through Redis; a refused token gets one refresh and
one retry, then a clear error — on the request path and in the outbox channel alike."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.db import unit_of_work
from app.extensions import db
from app.members.services import add_identity, create_member
from app.outbox.dispatcher import dispatch_outbox
from app.outbox.models import OutboxMessage
from app.outbox.services import enqueue_message
from app.platforms.wechat import wechat_client
from tests import platform_kit
from tests.platform_kit import APPID

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins

PHONE_API = "/wxa/business/getuserphonenumber"


def login(client, wechat, openid="oSTORM"):
    response = client.post("/mp/v1/wechat/login", json={"code": wechat.login_code(openid)})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def test_a_40001_storm_is_bounded_at_two_upstream_calls_per_request(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    headers = login(client, wechat)
    fetches_before = wechat.token_fetches
    wechat.reject_tokens = True
    requests = 12
    for _ in range(requests):
        response = client.post(
            "/mp/v1/wechat/phone", json={"code": wechat.phone_code("13912345678")}, headers=headers
        )
        assert response.status_code == 502  # a clear error, not a 500 nor a RecursionError
        assert response.get_json()["error"]["code"] == "WECHAT_TOKEN_REJECTED"
    assert wechat.api_calls[PHONE_API] == 2 * requests  # the call and its one retry
    # one refresh per request at most, and only the first forced (the rest read the token)
    assert wechat.token_fetches - fetches_before <= requests
    wechat.reject_tokens = False
    ok = client.post(
        "/mp/v1/wechat/phone", json={"code": wechat.phone_code("13912345678")}, headers=headers
    )
    assert ok.status_code == 200, ok.get_json()


def test_an_expired_token_is_refreshed_through_stable_token_and_retried_once(pay_app, standins):
    wechat, _ = standins
    client = pay_app.test_client()
    headers = login(client, wechat)
    wechat.revoke_tokens()  # as when WeChat expired it (42001) or another system forced one
    response = client.post(
        "/mp/v1/wechat/phone", json={"code": wechat.phone_code("13912345678")}, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    assert wechat.api_calls[PHONE_API] == 2
    assert ("POST", "/cgi-bin/stable_token") in wechat.requests
    assert ("GET", "/cgi-bin/token") not in wechat.requests


def test_processes_share_one_stable_token_through_redis(make_app, standins):
    wechat, alipay = standins
    apps = [make_app(**platform_kit.platform_config(wechat.url, alipay.url)) for _ in range(3)]
    tokens = set()
    for application in apps:
        with application.app_context():
            tokens.add(wechat_client().access_token)
    assert len(tokens) == 1 and wechat.token_fetches == 1


def test_the_outbox_channel_is_bounded_too_and_retries_later(make_app, standins):
    wechat, alipay = standins
    templates = json.dumps({"points_earned": {"template_id": "TPL", "data": {"n": "{points}"}}})
    application = make_app(
        **platform_kit.platform_config(wechat.url, alipay.url), WECHAT_SUBSCRIBE_TEMPLATES=templates
    )
    with application.app_context():
        with unit_of_work():
            member = create_member(source="test", welcome=False)
            add_identity(member, "wechat_openid", "oOUTBOX", APPID)
            enqueue_message(member.id, "points_earned", {"points": 5}, dedupe_key="storm:1")
        wechat.reject_tokens = True
        assert dispatch_outbox() == {"sent": 0, "retry": 1, "failed": 0, "skipped": 0}
        assert wechat.api_calls["/cgi-bin/message/subscribe/send"] == 2
        message = db.session.scalars(select(OutboxMessage)).one()
        assert message.status == "pending" and "WECHAT_TOKEN_REJECTED" in message.last_error
