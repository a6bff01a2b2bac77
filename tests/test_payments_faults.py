"""A transient fault answers so that the platform retries; the retry then applies once."""

from __future__ import annotations

from app.demo.notifications import (
    alipay_payment_fields,
    alipay_sign,
    wechat_v2_payment_fields,
    wechat_v2_xml,
    wechat_v3_notify,
    wechat_v3_transaction,
)
from app.members.services import find_by_identity
from app.points.services import balance_of
from tests import platform_kit
from tests.platform_kit import (
    ALIPAY_APP_ID,
    ALIPAY_SELLER,
    API_KEY,
    API_V3_KEY,
    APPID,
    MCH_ID,
    PUB_KEY_ID,
    alipay_private,
    platform_config,
    wechatpay_private,
)

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins

DATABASE_DOWN = "postgresql+psycopg://postgres@127.0.0.1:9/unreachable"


def v2():
    fields = wechat_v2_payment_fields(
        appid=APPID, mch_id=MCH_ID, transaction_id="42000001", openid="oFAULT", total_fee=999
    )
    return "/payments/wechat/notify", {"data": wechat_v2_xml(fields, API_KEY).encode()}


def v3():
    resource = wechat_v3_transaction(
        appid=APPID, mchid=MCH_ID, transaction_id="42000002", openid="oFAULT", total=999, store=None
    )
    headers, body = wechat_v3_notify(
        resource=resource,
        event_type="TRANSACTION.SUCCESS",
        platform_private_pem=wechatpay_private(),
        serial=PUB_KEY_ID,
        api_v3_key=API_V3_KEY,
    )
    return "/payments/wechat/v3/notify", {"data": body, "headers": headers}


def alipay():
    fields = alipay_payment_fields(
        app_id=ALIPAY_APP_ID,
        trade_no="2026000003",
        total_amount="9.99",
        buyer_id="2088000000000077",
        seller_id=ALIPAY_SELLER,
    )
    return "/payments/alipay/notify", {"data": alipay_sign(fields, alipay_private())}


def test_database_down_answers_5xx_in_each_platforms_format_then_the_retry_credits_once(
    make_app, pay_app, standins
):
    wechat, gateway = standins
    broken = make_app(DATABASE_URL=DATABASE_DOWN, **platform_config(wechat.url, gateway.url))
    requests = [v2(), v3(), alipay()]
    with broken.app_context():
        answers = [broken.test_client().post(path, **kw) for path, kw in requests]
    assert [a.status_code for a in answers] == [500, 500, 500]
    assert b"<return_code><![CDATA[FAIL]]></return_code>" in answers[0].data
    assert answers[1].get_json() == {"code": "FAIL", "message": "失败"}
    assert answers[2].data == b"fail"

    client = pay_app.test_client()
    for _ in range(2):  # the platform's retries, now that the database is back
        assert [client.post(path, **kw).status_code for path, kw in requests] == [200, 204, 200]
    wechat_member = find_by_identity("wechat_openid", "oFAULT", APPID)
    alipay_member = find_by_identity("alipay_user_id", "2088000000000077")
    assert balance_of(wechat_member.id) == 9 + 9  # the v2 and the v3 payment
    assert balance_of(alipay_member.id) == 9
