"""Several WeChat appids under one merchant: the official account's payers are accepted, and
identities kept per appid are joined into one member by unionid."""

from __future__ import annotations

import pytest

from app.demo.notifications import (
    wechat_v2_payment_fields,
    wechat_v2_refund_xml,
    wechat_v2_xml,
    wechat_v3_notify,
    wechat_v3_transaction,
)
from app.extensions import db
from app.members.models import Member, MemberIdentity
from app.members.services import find_by_identity
from app.outbox.dispatcher import dispatch_outbox
from app.points.services import balance_of
from tests import platform_kit
from tests.payment_asserts import counts
from tests.platform_kit import (
    API_KEY,
    API_V3_KEY,
    APPID,
    MCH_ID,
    PUB_KEY_ID,
    platform_config,
    wechatpay_private,
)

standins = platform_kit.standins  # fixture

OA_APPID = "wxoa00000000000001"
OA_SECRET = "oa-secret-0123456789abcdef0123"
UNIONID = "oUNION-shared-person"


@pytest.fixture
def oa_app(make_app, standins):
    wechat, alipay = standins
    wechat.add_app(OA_APPID, OA_SECRET)
    application = make_app(
        **platform_config(wechat.url, alipay.url),
        WECHAT_OA_APPID=OA_APPID,
        WECHAT_OA_APP_SECRET=OA_SECRET,
    )
    with application.app_context():
        yield application


def pay_v2(client, *, appid, openid, txn, total=3500):
    fields = wechat_v2_payment_fields(
        appid=appid, mch_id=MCH_ID, transaction_id=txn, openid=openid, total_fee=total
    )
    return client.post("/payments/wechat/notify", data=wechat_v2_xml(fields, API_KEY))


def pay_v3(client, *, appid, openid, txn, total=3500):
    resource = wechat_v3_transaction(
        appid=appid, mchid=MCH_ID, transaction_id=txn, openid=openid, total=total, store=None
    )
    headers, body = wechat_v3_notify(
        resource=resource,
        event_type="TRANSACTION.SUCCESS",
        platform_private_pem=wechatpay_private(),
        serial=PUB_KEY_ID,
        api_v3_key=API_V3_KEY,
    )
    return client.post("/payments/wechat/v3/notify", data=body, headers=headers)


def mp_login(client, wechat, openid, unionid=None):
    response = client.post("/mp/v1/wechat/login", json={"code": wechat.login_code(openid, unionid)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def identities(member_id: int) -> set[tuple[str, str, str]]:
    return {
        (i.kind, i.app, i.external_id)
        for i in db.session.query(MemberIdentity).filter_by(member_id=member_id)
    }


def live_members() -> list[Member]:
    db.session.expire_all()
    return db.session.query(Member).filter_by(status="active").all()


@pytest.mark.parametrize("pay", [pay_v2, pay_v3], ids=["v2", "v3"])
def test_an_official_account_payer_then_a_mini_program_login_end_as_one_member(
    oa_app, standins, pay
):
    wechat, _ = standins
    client = oa_app.test_client()
    wechat.followers["oOA-payer"] = {"unionid": UNIONID}
    response = pay(client, appid=OA_APPID, openid="oOA-payer", txn="4200000000000000000000000801")
    assert response.status_code in (200, 204), response.data
    payer = find_by_identity("wechat_openid", "oOA-payer", OA_APPID)
    assert payer is not None and balance_of(payer.id) == 35
    # after commit, the outbox asks the official account for the payer's unionid
    assert dispatch_outbox()["sent"] >= 1
    assert ("wechat_unionid", "", UNIONID) in identities(payer.id)
    # the same person opens the mini-program: another openid, the same unionid
    login = mp_login(client, wechat, "oMP-person", UNIONID)
    assert login["member"]["id"] == payer.id
    assert identities(payer.id) == {
        ("wechat_openid", OA_APPID, "oOA-payer"),
        ("wechat_openid", APPID, "oMP-person"),
        ("wechat_unionid", "", UNIONID),
    }
    assert len(live_members()) == 1


def test_a_mini_program_member_who_pays_in_the_official_account_is_merged_into_one(
    oa_app, standins
):
    wechat, _ = standins
    client = oa_app.test_client()
    first = mp_login(client, wechat, "oMP-first", UNIONID)["member"]["id"]
    wechat.followers["oOA-later"] = {"unionid": UNIONID}
    assert pay_v2(
        client, appid=OA_APPID, openid="oOA-later", txn="4200000000000000000000000802"
    ).status_code in (200, 204)
    assert len(live_members()) == 2  # the notification is answered before any WeChat lookup
    dispatch_outbox()
    (survivor,) = live_members()
    assert survivor.id == first  # the older member survives (neither has a phone)
    assert balance_of(first) == 35  # the payment's points moved with the merge
    assert ("wechat_openid", OA_APPID, "oOA-later") in identities(first)


def test_a_mini_program_payer_is_joined_by_getpaidunionid(oa_app, standins):
    wechat, _ = standins
    client = oa_app.test_client()
    wechat.paid_unionids["oMP-payer"] = "oUNION-mp"
    assert pay_v3(
        client, appid=APPID, openid="oMP-payer", txn="4200000000000000000000000803"
    ).status_code in (200, 204)
    dispatch_outbox()
    payer = find_by_identity("wechat_openid", "oMP-payer", APPID)
    assert ("wechat_unionid", "", "oUNION-mp") in identities(payer.id)
    assert wechat.api_calls["/wxa/getpaidunionid"] == 1
    # a second payment by a member whose unionid is known asks WeChat nothing
    assert pay_v3(
        client, appid=APPID, openid="oMP-payer", txn="4200000000000000000000000804"
    ).status_code in (200, 204)
    dispatch_outbox()
    assert wechat.api_calls["/wxa/getpaidunionid"] == 1


def test_a_payer_whose_unionid_is_not_available_stays_a_member(oa_app):
    client = oa_app.test_client()  # not a follower: the official account knows no unionid
    assert pay_v2(
        client, appid=OA_APPID, openid="oOA-quiet", txn="4200000000000000000000000805"
    ).status_code in (200, 204)
    assert dispatch_outbox()["skipped"] >= 1
    member = find_by_identity("wechat_openid", "oOA-quiet", OA_APPID)
    assert member is not None and balance_of(member.id) == 35


def test_refunds_of_official_account_payments_are_accepted(oa_app):
    client = oa_app.test_client()
    assert pay_v2(
        client, appid=OA_APPID, openid="oOA-r", txn="4200000000000000000000000806"
    ).status_code in (200, 204)
    refund = wechat_v2_refund_xml(
        appid=OA_APPID,
        mch_id=MCH_ID,
        api_key=API_KEY,
        transaction_id="4200000000000000000000000806",
        refund_id="50000000000000000000000806",
        refund_fee=3500,
        total_fee=3500,
    )
    response = client.post("/payments/wechat/refund-notify", data=refund)
    assert response.status_code == 200, response.data
    member = find_by_identity("wechat_openid", "oOA-r", OA_APPID)
    assert balance_of(member.id) == 0


def test_an_appid_that_is_not_the_brands_is_still_refused(oa_app):
    client = oa_app.test_client()
    response = pay_v2(
        client, appid="wxstranger0000001", openid="o1", txn="4200000000000000000000000807"
    )
    assert response.status_code == 400
    assert counts()["purchases"] == 0


def test_without_the_official_account_configured_its_payments_are_refused(make_app, standins):
    wechat, alipay = standins
    application = make_app(**platform_config(wechat.url, alipay.url))
    with application.app_context():
        response = pay_v2(
            application.test_client(),
            appid=OA_APPID,
            openid="o2",
            txn="4200000000000000000000000808",
        )
        assert response.status_code == 400
