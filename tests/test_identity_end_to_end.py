"""The whole story: imported member, pays with both wallets, binds the phone in both apps."""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.demo.notifications import (
    alipay_payment_fields,
    alipay_sign,
    wechat_v2_payment_fields,
    wechat_v2_xml,
)
from app.extensions import db
from app.members.models import MemberMerge
from app.points.services import audit_differences
from tests import platform_kit
from tests.platform_kit import (
    ALIPAY_APP_ID,
    ALIPAY_SELLER,
    API_KEY,
    APPID,
    MCH_ID,
    SECRETS,
    alipay_private,
    keys,
)

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins

PHONE = "13812345678"
OPENID = "oE2EPAYER"
BUYER = "2088000000000123"
ALI_OPEN_ID = "0oE2EALIPAY"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_one_person_through_every_door_ends_as_one_member_with_the_exact_sum(
    pay_app, standins, admin_headers, caplog
):
    caplog.set_level(logging.DEBUG)
    wechat, alipay = standins
    client = pay_app.test_client()

    imported = client.post(
        "/admin/v1/members", json={"phone": PHONE, "points": 100}, headers=admin_headers
    ).get_json()

    fields = wechat_v2_payment_fields(
        appid=APPID, mch_id=MCH_ID, transaction_id="4200E2E1", openid=OPENID, total_fee=3500
    )
    xml = wechat_v2_xml(fields, API_KEY, None).encode()  # undeclared HMAC: MD5 tried first
    assert client.post("/payments/wechat/notify", data=xml).status_code == 200
    form = alipay_sign(
        alipay_payment_fields(
            app_id=ALIPAY_APP_ID,
            trade_no="2026E2E2",
            total_amount="20.00",
            buyer_id=BUYER,
            buyer_open_id=ALI_OPEN_ID,
            seller_id=ALIPAY_SELLER,
        ),
        alipay_private(),
    )
    assert client.post("/payments/alipay/notify", data=form).data == b"success"

    code = wechat.login_code(OPENID)
    wechat_login = client.post("/mp/v1/wechat/login", json={"code": code}).get_json()
    code = alipay.auth_code(BUYER, ALI_OPEN_ID)
    alipay_login = client.post("/mp/v1/alipay/login", json={"auth_code": code}).get_json()
    assert wechat_login["member"]["points_balance"] == 35
    assert alipay_login["member"]["points_balance"] == 20
    wechat_token, alipay_token = wechat_login["token"], alipay_login["token"]

    bound = client.post(
        "/mp/v1/wechat/phone",
        json={"code": wechat.phone_code(PHONE)},
        headers=bearer(wechat_token),
    ).get_json()
    assert bound["merged"] is True and bound["member"]["id"] == imported["id"]
    bound = client.post(
        "/mp/v1/alipay/phone", json=alipay.phone_response(PHONE), headers=bearer(alipay_token)
    ).get_json()
    assert bound["merged"] is True and bound["member"]["id"] == imported["id"]

    for token in (wechat_token, alipay_token):
        me = client.get("/mp/v1/me", headers=bearer(token)).get_json()
        assert me["id"] == imported["id"]
        assert me["points_balance"] == 155
        assert me["phone_masked"] == "138****5678"
    detail = client.get(f"/admin/v1/members/{imported['id']}", headers=admin_headers).get_json()
    assert sorted((i["kind"], i["external_id"]) for i in detail["identities"]) == [
        ("alipay_open_id", ALI_OPEN_ID),
        ("alipay_user_id", BUYER),
        ("phone", PHONE),
        ("wechat_openid", OPENID),
    ]
    assert detail["points_balance"] == 155 and detail["status"] == "active"
    for absorbed in (wechat_login["member"]["id"], alipay_login["member"]["id"]):
        gone = client.get(f"/admin/v1/members/{absorbed}", headers=admin_headers).get_json()
        assert gone["merged_into"] == imported["id"] and gone["points_balance"] == 0
    merges = db.session.scalars(select(MemberMerge)).all()
    assert {m.survivor_id for m in merges} == {imported["id"]} and len(merges) == 2
    assert audit_differences() == []

    logged = caplog.text
    assert "member" in logged  # the flow did log
    secrets = [*SECRETS, wechat_token, alipay_token, PHONE, "+86" + PHONE]
    secrets += [pem.splitlines()[1] for pair in keys().values() for pem in pair]
    for secret in secrets:
        assert secret not in logged, f"{secret[:6]}… leaked into the logs"
