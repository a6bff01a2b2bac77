"""WeChat Pay API v3: signed JSON with an encrypted resource, payments and refunds."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app.common.clock import utcnow
from app.payments.simulate import wechat_v3_notify, wechat_v3_transaction
from app.points.services import balance_of
from tests import platform_kit
from tests.conftest import requires_postgres
from tests.payment_asserts import counts, ledger_is_consistent, only_member
from tests.platform_kit import (
    API_V3_KEY,
    APPID,
    MCH_ID,
    PUB_KEY_ID,
    other_private,
    run_concurrently,
    wechatpay_private,
)

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins

PATH = "/payments/wechat/v3/notify"
TXN = "4200001234202611230000000777"


def transaction(**overrides):
    resource = wechat_v3_transaction(
        appid=APPID, mchid=MCH_ID, transaction_id=TXN, openid="oV3PAYER", total=8899, store=None
    )
    resource.update(overrides)
    return resource


def notify(resource=None, event_type="TRANSACTION.SUCCESS", **kw):
    return wechat_v3_notify(
        resource=resource or transaction(),
        event_type=event_type,
        platform_private_pem=kw.get("key", wechatpay_private()),
        serial=kw.get("serial", PUB_KEY_ID),
        api_v3_key=kw.get("v3key", API_V3_KEY),
        timestamp=kw.get("timestamp"),
    )


def post(client, headers, body):
    return client.post(PATH, data=body, headers=headers)


def test_a_valid_notify_makes_one_member_and_one_credit_and_answers_204(pay_app):
    headers, body = notify()
    response = post(pay_app.test_client(), headers, body)
    assert response.status_code == 204 and response.data == b""
    member = only_member()
    assert [(i.kind, i.app, i.external_id) for i in member.identities] == [
        ("wechat_openid", APPID, "oV3PAYER")
    ]
    assert balance_of(member.id) == 88


def test_a_replay_changes_nothing(pay_app):
    headers, body = notify()
    for _ in range(3):
        assert post(pay_app.test_client(), headers, body).status_code == 204
    assert counts() == {"members": 1, "identities": 1, "purchases": 1, "entries": 1}


def _reserialised():
    headers, body = notify()
    return headers, json.dumps(json.loads(body)).encode()  # same JSON, other bytes


def _body_field_changed():
    headers, body = notify()
    return headers, body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCES2")


def _header(name, value):
    headers, body = notify()
    return {**headers, name: value}, body


def _without(name):
    headers, body = notify()
    return {k: v for k, v in headers.items() if k != name}, body


TAMPERINGS = {
    "body changed": _body_field_changed,
    "body re-serialised": _reserialised,
    "signed by another key": lambda: notify(key=other_private()),
    "garbage signature": lambda: _header("Wechatpay-Signature", "not-base64!!"),
    "unknown serial": lambda: notify(serial="PUB_KEY_ID_0000000000000000000000000000"),
    "stale timestamp": lambda: notify(timestamp=int(utcnow().timestamp()) - 301),
    "future timestamp": lambda: notify(
        timestamp=int(utcnow().timestamp()) + 330
    ),  # margin: a slow test
    "1970 timestamp": lambda: notify(timestamp=0),
    "timestamp header changed": lambda: _header(
        "Wechatpay-Timestamp", str(int(utcnow().timestamp()) - 5)
    ),
    "other signature type": lambda: _header("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3"),
    "no signature": lambda: _without("Wechatpay-Signature"),
    "wrong APIv3 key": lambda: notify(v3key="another-v3-key-0123456789abcdef0"),
    "foreign appid": lambda: notify(transaction(appid="wxother000000000")),
    "foreign mchid": lambda: notify(transaction(mchid="1999999999")),
}


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=list(TAMPERINGS))
def test_each_tampering_is_rejected_with_a_4xx_fail_body_and_no_effect(pay_app, tamper):
    headers, body = TAMPERINGS[tamper]()
    response = post(pay_app.test_client(), headers, body)
    assert 400 <= response.status_code < 500, response.data
    assert response.get_json() == {"code": "FAIL", "message": "失败"}
    assert counts() == {"members": 0, "identities": 0, "purchases": 0, "entries": 0}


def test_a_timestamp_within_the_window_is_accepted(pay_app):
    headers, body = notify(timestamp=int((utcnow() - timedelta(seconds=290)).timestamp()))
    assert post(pay_app.test_client(), headers, body).status_code == 204


def test_a_missing_signature_type_header_is_not_a_500(pay_app):
    headers, body = _without("Wechatpay-Signature-Type")
    assert post(pay_app.test_client(), headers, body).status_code == 204


def test_a_trade_that_is_not_paid_changes_nothing(pay_app):
    headers, body = notify(transaction(trade_state="NOTPAY"))
    assert post(pay_app.test_client(), headers, body).status_code == 204
    assert counts()["members"] == 0


def refund(refund_id: str, amount: int, status: str = "SUCCESS"):
    resource = {
        "mchid": MCH_ID,
        "transaction_id": TXN,
        "out_trade_no": "HY1",
        "refund_id": refund_id,
        "out_refund_no": "R" + refund_id,
        "refund_status": status,
        "success_time": utcnow().isoformat(),
        "amount": {"total": 8899, "refund": amount, "payer_total": 8899, "payer_refund": amount},
    }
    return notify(resource, event_type=f"REFUND.{status}")


def test_refund_events_take_back_exactly_the_earned_points_never_more(pay_app):
    client = pay_app.test_client()
    post(client, *notify())
    member_id = only_member().id
    assert post(client, *refund("5030R1", 1899)).status_code == 204
    assert balance_of(member_id) == 69  # floor(E × (T − R) / T) = floor(88 × 7000 / 8899)
    assert post(client, *refund("5030R1", 1899)).status_code == 204  # replay
    assert post(client, *refund("5030R9", 500, "ABNORMAL")).status_code == 204  # no effect
    assert balance_of(member_id) == 69
    assert post(client, *refund("5030R2", 7000)).status_code == 204
    assert balance_of(member_id) == 0
    assert ledger_is_consistent()


@requires_postgres
def test_twenty_concurrent_duplicates_make_one_member_and_one_credit(pay_app):
    headers, body = notify()

    def deliver():
        return pay_app.test_client().post(PATH, data=body, headers=headers).status_code

    assert run_concurrently(pay_app, 20, deliver) == [204] * 20
    assert counts() == {"members": 1, "identities": 1, "purchases": 1, "entries": 1}
