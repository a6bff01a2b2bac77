"""Alipay async notifications: RSA2 verification pitfalls, SUCCESS→FINISHED, refunds."""

from __future__ import annotations

import pytest

from app.demo.notifications import alipay_payment_fields, alipay_sign
from app.points.services import balance_of
from app.stores.services import create_store
from tests import platform_kit
from tests.conftest import requires_postgres
from tests.payment_asserts import counts, ledger_is_consistent, only_member
from tests.platform_kit import (
    ALIPAY_APP_ID,
    ALIPAY_SELLER,
    alipay_private,
    keys,
    other_private,
    run_concurrently,
)

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins

PATH = "/payments/alipay/notify"
TRADE_NO = "2026112322001412345678901234"
BUYER = "2088102177846880"
OPEN_ID = "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"


def fields(**overrides):
    data = alipay_payment_fields(
        app_id=ALIPAY_APP_ID,
        trade_no=TRADE_NO,
        total_amount="35.00",
        buyer_id=BUYER,
        buyer_open_id=OPEN_ID,
        store="HZ001",
        seller_id=ALIPAY_SELLER,
    )
    data.update(overrides)
    return data


def signed(**overrides):
    return alipay_sign(fields(**overrides), alipay_private())


def post(client, form):
    return client.post(PATH, data=form)


def test_a_valid_notify_makes_one_member_with_both_alipay_ids_and_one_credit(pay_app):
    store = create_store("HZ001", "西湖店")
    response = post(pay_app.test_client(), signed())
    assert response.status_code == 200 and response.data == b"success"
    member = only_member()
    assert sorted((i.kind, i.app, i.external_id) for i in member.identities) == [
        ("alipay_open_id", ALIPAY_APP_ID, OPEN_ID),
        ("alipay_user_id", "", BUYER),
    ]
    assert member.join_store_id == store.id
    assert balance_of(member.id) == 35


def test_success_then_finished_credits_once(pay_app):
    client = pay_app.test_client()
    assert post(client, signed()).data == b"success"
    assert post(client, signed()).data == b"success"  # same notify_id retried
    assert post(client, signed(trade_status="TRADE_FINISHED")).data == b"success"
    assert counts() == {"members": 1, "identities": 2, "purchases": 1, "entries": 1}
    assert balance_of(only_member().id) == 35


def test_a_payer_known_by_user_id_only_gains_the_open_id(pay_app):
    client = pay_app.test_client()
    post(
        client,
        alipay_sign({k: v for k, v in fields().items() if k != "buyer_open_id"}, alipay_private()),
    )
    post(client, signed(trade_no="2026112322001499999999999999"))
    member = only_member()
    assert len(member.identities) == 2 and balance_of(member.id) == 70


def test_partial_then_full_refund_takes_back_exactly_the_earned_points_never_more(pay_app):
    client = pay_app.test_client()
    post(client, signed())
    member_id = only_member().id
    partial = signed(refund_fee="10.50", out_biz_no="R1", gmt_refund="2026-11-23 20:00:00.123")
    assert post(client, partial).data == b"success"
    assert balance_of(member_id) == 24  # keeps floor(2450 / 100)
    assert post(client, partial).data == b"success"  # retried
    assert balance_of(member_id) == 24
    closed = signed(
        trade_status="TRADE_CLOSED", refund_fee="35.00", gmt_close="2026-11-23 21:00:00"
    )
    assert post(client, closed).data == b"success"
    assert post(client, closed).data == b"success"
    assert balance_of(member_id) == 0
    assert counts()["purchases"] == 1
    assert ledger_is_consistent()


def test_a_trade_closed_unpaid_changes_nothing(pay_app):
    assert post(pay_app.test_client(), signed(trade_status="TRADE_CLOSED")).data == b"success"
    assert counts()["members"] == 0


def test_a_waiting_trade_changes_nothing(pay_app):
    assert post(pay_app.test_client(), signed(trade_status="WAIT_BUYER_PAY")).data == b"success"
    assert counts()["members"] == 0


def _with(form, **changes):
    return {**form, **changes}


def _without(form, name):
    return {k: v for k, v in form.items() if k != name}


TAMPERINGS = {
    "amount changed": lambda: _with(signed(), total_amount="3500.00"),
    "empty field changed": lambda: _with(signed(), body="x"),
    "signed by another key": lambda: alipay_sign(fields(), other_private()),
    "signed by our app key": lambda: alipay_sign(fields(), keys()["app"][0]),
    "garbage signature": lambda: _with(signed(), sign="@@not base64@@"),
    "truncated signature": lambda: _with(signed(), sign=signed()["sign"][:-8]),
    "no signature": lambda: _without(signed(), "sign"),
    "sign_type RSA": lambda: _with(signed(), sign_type="RSA"),
    "sign_type unknown": lambda: _with(signed(), sign_type="SM2"),
    "foreign app_id": lambda: signed(app_id="2021000999999999"),
    "foreign seller_id": lambda: signed(seller_id="2088999999999999"),
}


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=list(TAMPERINGS))
def test_each_tampering_is_rejected_with_fail_and_no_effect(pay_app, tamper):
    response = post(pay_app.test_client(), TAMPERINGS[tamper]())
    assert 400 <= response.status_code < 500
    assert response.data == b"fail"
    assert counts() == {"members": 0, "identities": 0, "purchases": 0, "entries": 0}


@requires_postgres
def test_twenty_concurrent_duplicates_make_one_member_and_one_credit(pay_app):
    form = signed()

    def deliver():
        return pay_app.test_client().post(PATH, data=form).data

    assert run_concurrently(pay_app, 20, deliver) == [b"success"] * 20
    assert counts() == {"members": 1, "identities": 2, "purchases": 1, "entries": 1}
