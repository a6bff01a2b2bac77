"""WeChat Pay API v2: payment and refund notifications through the real endpoint."""

from __future__ import annotations

import pytest

from app.payments.simulate import (
    wechat_v2_payment_fields,
    wechat_v2_refund_xml,
    wechat_v2_xml,
)
from app.points.services import balance_of
from app.stores.services import create_store
from tests import platform_kit
from tests.conftest import requires_postgres
from tests.payment_asserts import counts, ledger_is_consistent, only_member
from tests.platform_kit import (
    API_KEY,
    APPID,
    MCH_ID,
    run_concurrently,
)

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins

SUCCESS = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)


def payment(**overrides):
    fields = wechat_v2_payment_fields(
        appid=APPID,
        mch_id=MCH_ID,
        transaction_id="4200001234202611230000000001",
        openid="oPAYER0001",
        total_fee=3550,
        store="SH001",
    )
    fields.update(overrides)
    return fields


def post(client, xml: str, path: str = "/payments/wechat/notify"):
    return client.post(path, data=xml.encode(), content_type="text/xml")


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256", None])
def test_a_valid_notify_makes_one_member_with_the_openid_and_one_credit(pay_app, sign_type):
    store = create_store("SH001", "静安店")
    response = post(pay_app.test_client(), wechat_v2_xml(payment(), API_KEY, sign_type))
    assert response.status_code == 200
    assert response.data == SUCCESS
    assert response.content_type.startswith("text/xml")
    member = only_member()
    assert [(i.kind, i.app, i.external_id) for i in member.identities] == [
        ("wechat_openid", APPID, "oPAYER0001")
    ]
    assert member.source == "wechat_pay" and member.join_store_id == store.id
    assert balance_of(member.id) == 35  # floor(3550 fen × 1 / 100)
    assert counts()["purchases"] == 1


def test_a_replayed_notify_changes_nothing(pay_app):
    client = pay_app.test_client()
    xml = wechat_v2_xml(payment(), API_KEY)
    for _ in range(3):
        assert post(client, xml).data == SUCCESS
    assert counts() == {"members": 1, "identities": 1, "purchases": 1, "entries": 1}


def test_a_second_payment_by_the_same_payer_credits_the_same_member(pay_app):
    client = pay_app.test_client()
    post(client, wechat_v2_xml(payment(), API_KEY))
    post(client, wechat_v2_xml(payment(transaction_id="42000099", total_fee="1000"), API_KEY))
    assert balance_of(only_member().id) == 45


def test_an_unknown_or_missing_store_still_counts_the_payment(pay_app):
    fields = payment(attach="not json")
    assert post(pay_app.test_client(), wechat_v2_xml(fields, API_KEY)).data == SUCCESS
    assert balance_of(only_member().id) == 35


def _tampered_field():
    xml = wechat_v2_xml(payment(), API_KEY)
    return xml.replace("<total_fee>3550</total_fee>", "<total_fee>355000</total_fee>")


def _md5_claimed_for_hmac():
    xml = wechat_v2_xml(payment(), API_KEY, None)  # HMAC-SHA256 signature
    return xml.replace("<xml>\n", "<xml>\n<sign_type><![CDATA[MD5]]></sign_type>\n", 1)


TAMPERINGS = {
    "field changed": _tampered_field,
    "wrong key": lambda: wechat_v2_xml(payment(), "another-merchant-key-0123456789ab"),
    "signature garbage": lambda: wechat_v2_xml(payment(), API_KEY).replace(
        "<sign><![CDATA[", "<sign><![CDATA[00"
    ),
    "no signature": lambda: wechat_v2_xml(payment(), API_KEY).split("<sign>")[0] + "</xml>",
    "sign_type switched": _md5_claimed_for_hmac,
    "unknown sign_type": lambda: wechat_v2_xml(payment(), API_KEY, "SHA1"),
    "not xml": lambda: "{'total_fee': 1}",
    "foreign appid": lambda: wechat_v2_xml(payment(appid="wxother000000000"), API_KEY),
    "foreign mch_id": lambda: wechat_v2_xml(payment(mch_id="1999999999"), API_KEY),
}


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=list(TAMPERINGS))
def test_each_tampering_is_rejected_with_fail_and_no_effect(pay_app, tamper):
    response = post(pay_app.test_client(), TAMPERINGS[tamper]())
    assert 400 <= response.status_code < 500
    assert b"<return_code><![CDATA[FAIL]]></return_code>" in response.data
    assert counts() == {"members": 0, "identities": 0, "purchases": 0, "entries": 0}


def test_a_failed_trade_is_acknowledged_without_effect(pay_app):
    xml = wechat_v2_xml(payment(result_code="FAIL"), API_KEY)
    assert post(pay_app.test_client(), xml).data == SUCCESS
    assert counts()["members"] == 0


def refund(refund_id: str, refund_fee: int, key: str = API_KEY, **kw) -> str:
    return wechat_v2_refund_xml(
        appid=kw.get("appid", APPID),
        mch_id=MCH_ID,
        api_key=key,
        transaction_id="4200001234202611230000000001",
        refund_id=refund_id,
        refund_fee=refund_fee,
        total_fee=3550,
    )


def test_partial_then_full_refund_takes_back_exactly_the_earned_points(pay_app):
    client = pay_app.test_client()
    post(client, wechat_v2_xml(payment(), API_KEY))
    member = only_member()
    path = "/payments/wechat/refund-notify"
    assert post(client, refund("50300001", 1050), path).data == SUCCESS
    assert balance_of(member.id) == 24  # keeps floor(E × (T − R) / T) = floor(35 × 2500 / 3550)
    assert post(client, refund("50300001", 1050), path).data == SUCCESS  # replay
    assert balance_of(member.id) == 24
    assert post(client, refund("50300002", 2500), path).data == SUCCESS
    assert balance_of(member.id) == 0
    assert post(client, refund("50300003", 100), path).data == SUCCESS  # more than paid
    assert balance_of(member.id) == 0
    assert ledger_is_consistent()


@pytest.mark.parametrize("case", ["wrong key", "foreign appid", "garbage req_info"])
def test_a_refund_notify_that_cannot_be_verified_is_rejected(pay_app, case):
    client = pay_app.test_client()
    post(client, wechat_v2_xml(payment(), API_KEY))
    if case == "wrong key":
        xml = refund("50300001", 3550, key="wrong-key-wrong-key-wrong-key-00")
    elif case == "foreign appid":
        xml = refund("50300001", 3550, appid="wxother000000000")
    else:
        xml = refund("50300001", 3550).replace("<req_info><![CDATA[", "<req_info><![CDATA[AAAA")
    response = post(client, xml, "/payments/wechat/refund-notify")
    assert 400 <= response.status_code < 500
    assert b"FAIL" in response.data
    assert balance_of(only_member().id) == 35


@requires_postgres
def test_twenty_concurrent_duplicates_make_one_member_and_one_credit(pay_app):
    xml = wechat_v2_xml(payment(), API_KEY).encode()

    def deliver():
        return pay_app.test_client().post("/payments/wechat/notify", data=xml).status_code

    assert run_concurrently(pay_app, 20, deliver) == [200] * 20
    assert counts() == {"members": 1, "identities": 1, "purchases": 1, "entries": 1}
    assert balance_of(only_member().id) == 35


def test_a_refund_for_a_payment_never_seen_is_acknowledged_without_effect(pay_app):
    response = post(
        pay_app.test_client(), refund("50300001", 100), "/payments/wechat/refund-notify"
    )
    assert response.data == SUCCESS
    assert counts() == {"members": 0, "identities": 0, "purchases": 0, "entries": 0}
