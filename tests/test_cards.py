"""Member cards: opened on join or on request, synced on earn, spend, tier change and merge —
each change once, whatever the retries — through wechatpy's card API and python-alipay-sdk
against the local stand-ins."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.cards.models import MemberCard
from app.common.clock import advance, frozen, utcnow
from app.common.hooks import TIER_CHANGED, TierChanged
from app.db import unit_of_work
from app.demo.notifications import wechat_v2_payment_fields, wechat_v2_xml
from app.extensions import db
from app.members.services import find_by_identity
from app.outbox.dispatcher import dispatch_outbox
from app.outbox.models import OutboxMessage
from app.points.services import balance_of
from tests import platform_kit
from tests.platform_kit import API_KEY, APPID, MCH_ID, platform_config

standins = platform_kit.standins  # fixture


@pytest.fixture
def card_app(make_app, standins):
    wechat, alipay = standins
    application = make_app(
        **platform_config(wechat.url, alipay.url),
        MEMBER_CARDS="wechat,alipay",
        WECHAT_CARD_ID=wechat.create_card_template(),
        ALIPAY_CARD_TEMPLATE_ID=alipay.create_card_template(),
        WECHAT_SERVER_TOKEN="server-token-123",
    )
    with application.app_context():
        yield application


def pay(client, openid: str, txn: str, fen: int):
    fields = wechat_v2_payment_fields(
        appid=APPID, mch_id=MCH_ID, transaction_id=txn, openid=openid, total_fee=fen
    )
    response = client.post("/payments/wechat/notify", data=wechat_v2_xml(fields, API_KEY))
    assert response.status_code == 200, response.data
    return find_by_identity("wechat_openid", openid, APPID)


def card(member_id: int, platform: str) -> MemberCard:
    db.session.expire_all()
    return db.session.scalars(
        select(MemberCard).where(MemberCard.member_id == member_id, MemberCard.platform == platform)
    ).one()


def wechat_card(wechat, app, member_id):
    found = card(member_id, "wechat")
    return wechat.cards[(app.config["WECHAT_CARD_ID"], found.card_no)]


def deliver_all():
    """Run the dispatcher until nothing is due, moving the clock past each backoff."""
    totals = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    with frozen(utcnow()):
        for _ in range(10):
            counts = dispatch_outbox()
            for key, value in counts.items():
                totals[key] += value
            if not counts["retry"] and not counts["sent"]:
                break
            advance(timedelta(hours=7))
    return totals


def test_a_paying_member_gets_a_wechat_card_opened_and_synced_on_earn(card_app, standins):
    wechat, _ = standins
    member = pay(card_app.test_client(), "oCARD1", "4200000000000000000000000901", 3500)
    assert card(member.id, "wechat").state == "opening"
    deliver_all()
    opened = card(member.id, "wechat")
    assert opened.state == "active" and opened.synced_points == 35
    shown = wechat_card(wechat, card_app, member.id)
    assert shown["bonus"] == 35 and shown["membership_number"] == opened.card_no
    pay(card_app.test_client(), "oCARD1", "4200000000000000000000000902", 1200)
    deliver_all()
    assert wechat_card(wechat, card_app, member.id)["bonus"] == 47
    assert wechat_card(wechat, card_app, member.id)["history"][-1] == (12, "消费获得积分")


def test_spend_tier_change_and_retries_each_land_once(card_app, standins):
    wechat, _ = standins
    client = card_app.test_client()
    member = pay(client, "oCARD2", "4200000000000000000000000911", 50000)
    deliver_all()
    # spend: exchange 100 points for a coupon in the mini-program
    admin = {"Authorization": "Bearer " + _admin_token()}
    template = client.post(
        "/admin/v1/coupon-templates",
        json={
            "name": "满减",
            "kind": "cash_off",
            "value_fen": 500,
            "valid_days": 30,
            "giftable": False,
            "points_price": 100,
        },
        headers=admin,
    ).get_json()
    token = _member_token(member.id)
    wechat.fail_card_calls = 2  # WeChat busy twice: the sync is retried with backoff
    spent = client.post(
        f"/mp/v1/coupon-templates/{template['id']}/exchange",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert spent.status_code == 201, spent.get_json()
    totals = deliver_all()
    assert totals["retry"] >= 2
    assert wechat_card(wechat, card_app, member.id)["bonus"] == 400
    # tier change (the tier feature fires this hook; here the test fires it)
    change = TierChanged(member.id, "silver", "gold", "upgrade", utcnow())
    for _ in range(2):  # the same change applied again (a replayed event)
        with unit_of_work():
            TIER_CHANGED.fire([change])
    deliver_all()
    shown = wechat_card(wechat, card_app, member.id)
    assert shown["level"] == "gold" and shown["bonus"] == 400
    tier_syncs = [h for h in shown["history"] if h[1] == "会员等级变更"]
    assert len(tier_syncs) == 1  # the same change fired twice is delivered once
    # a delivery repeated after a crash (sent, not yet recorded) changes nothing on the card
    before = dict(shown)
    last = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.channel == "wechat_card")
        .order_by(OutboxMessage.id.desc())
    ).first()
    with unit_of_work():
        db.session.get(OutboxMessage, last.id).status = "pending"
    deliver_all()
    after = wechat_card(wechat, card_app, member.id)
    assert (after["bonus"], after["level"]) == (before["bonus"], before["level"]) == (400, "gold")
    assert balance_of(member.id) == 400


def test_alipay_member_card_opens_and_follows_points_and_level(card_app, standins):
    _, alipay = standins
    client = card_app.test_client()
    code = alipay.auth_code("2088000000000088", "0ALIOPEN88")
    login = client.post("/mp/v1/alipay/login", json={"auth_code": code}).get_json()
    member_id = login["member"]["id"]
    alipay.fail_card_calls = 1  # the open is retried: out_serial_no makes it the same card
    deliver_all()
    opened = card(member_id, "alipay")
    assert opened.state == "active" and opened.platform_card_no in alipay.cards
    with unit_of_work():
        from app.points.services import post_entry

        post_entry(member_id, 80, kind="adjust", idempotency_key="t:adjust:1", reason="test")
        TIER_CHANGED.fire([TierChanged(member_id, None, "silver", "upgrade", utcnow())])
    deliver_all()
    shown = alipay.cards[card(member_id, "alipay").platform_card_no]
    assert (shown["point"], shown["level"]) == ("80", "silver")
    assert len(alipay._card_serials) == 1  # one card, however often the open was sent


def test_merge_moves_or_retires_cards_and_syncs_the_survivor(card_app, standins):
    wechat, alipay = standins
    client = card_app.test_client()
    payer = pay(client, "oCARD3", "4200000000000000000000000921", 2000)
    code = alipay.auth_code("2088000000000099")
    login = client.post("/mp/v1/alipay/login", json={"auth_code": code}).get_json()
    deliver_all()
    # the WeChat payer binds a phone, then the Alipay member binds the same phone: one person
    wx_token = _member_token(payer.id)
    wx_login = client.post(
        "/mp/v1/wechat/login", json={"code": wechat.login_code("oCARD3")}
    ).get_json()
    assert wx_login["member"]["id"] == payer.id
    bound = client.post(
        "/mp/v1/wechat/phone",
        json={"code": wechat.phone_code("13612345678")},
        headers={"Authorization": f"Bearer {wx_token}"},
    )
    assert bound.status_code == 200
    merged = client.post(
        "/mp/v1/alipay/phone",
        json=alipay.phone_response("13612345678"),
        headers={"Authorization": f"Bearer {login['token']}"},
    )
    assert merged.get_json()["merged"] is True
    deliver_all()
    survivor = payer.id
    assert card(survivor, "wechat").state == "active"
    moved = card(survivor, "alipay")  # the absorbed member's Alipay card now the survivor's
    assert moved.state == "active"
    assert wechat_card(wechat, card_app, survivor)["bonus"] == balance_of(survivor) == 20
    assert alipay.cards[moved.platform_card_no]["point"] == "20"


def test_a_member_who_deletes_the_card_in_wechat_is_no_longer_synced(card_app, standins):
    from wechatpy.utils import WeChatSigner

    wechat, _ = standins
    client = card_app.test_client()
    member = pay(client, "oCARD4", "4200000000000000000000000931", 1000)
    deliver_all()
    opened = card(member.id, "wechat")
    wechat.delete_card(card_app.config["WECHAT_CARD_ID"], opened.card_no)
    signer = WeChatSigner()
    signer.add_data("server-token-123", "1700000000", "nonce1")
    query = f"?signature={signer.signature}&timestamp=1700000000&nonce=nonce1"
    event = (
        "<xml><ToUserName><![CDATA[gh_brand]]></ToUserName>"
        "<FromUserName><![CDATA[oCARD4]]></FromUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[user_del_card]]></Event>"
        f"<CardId><![CDATA[{opened.template_id}]]></CardId>"
        f"<UserCardCode><![CDATA[{opened.card_no}]]></UserCardCode></xml>"
    )
    forged = client.post("/cards/wechat/events?signature=bad&timestamp=1&nonce=n", data=event)
    assert forged.status_code == 401
    assert card(member.id, "wechat").state == "active"
    for _ in range(2):  # WeChat retries pushes: a replay changes nothing
        response = client.post("/cards/wechat/events" + query, data=event)
        assert response.status_code == 200 and response.data == b"success"
    assert card(member.id, "wechat").state == "deleted"
    pay(client, "oCARD4", "4200000000000000000000000932", 1000)
    assert deliver_all()["sent"] == 0  # nothing sent to a deleted card
    # the member asks for the card again: it is activated with the current balance
    again = client.post(
        "/mp/v1/cards/wechat", headers={"Authorization": f"Bearer {_member_token(member.id)}"}
    )
    assert again.status_code == 202 and again.get_json()["state"] == "opening"


def test_cards_are_off_unless_enabled(make_app, standins):
    wechat, alipay = standins
    application = make_app(**platform_config(wechat.url, alipay.url))
    with application.app_context():
        member = pay(application.test_client(), "oNOCARD", "4200000000000000000000000941", 500)
        assert db.session.scalars(select(MemberCard)).all() == []
        response = application.test_client().post(
            "/mp/v1/cards/wechat",
            headers={"Authorization": f"Bearer {_member_token(member.id)}"},
        )
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "CARDS_DISABLED"
        unknown = application.test_client().post(
            "/mp/v1/cards/unionpay",
            headers={"Authorization": f"Bearer {_member_token(member.id)}"},
        )
        assert unknown.status_code == 404


def _member_token(member_id: int) -> str:
    from miniprogram_api.auth import issue_member_token

    return issue_member_token(member_id, "wechat")


def _admin_token() -> str:
    from app.admin.auth import create_admin_token

    return create_admin_token("cards-test")


def test_an_alipay_card_that_could_not_open_opens_when_asked_again(card_app, standins):
    from app.extensions import redis_store

    _, alipay = standins
    client = card_app.test_client()
    code = alipay.auth_code("2088000000000111")
    login = client.post("/mp/v1/alipay/login", json={"auth_code": code}).get_json()
    for key in redis_store.client.scan_iter("huiyuan:alipay:user-token:*"):
        redis_store.client.delete(key)  # the authorisation lapsed before the opening ran
    assert deliver_all()["skipped"] >= 1
    assert card(login["member"]["id"], "alipay").state == "opening"
    again = client.post(
        "/mp/v1/alipay/login", json={"auth_code": alipay.auth_code("2088000000000111")}
    )
    headers = {"Authorization": f"Bearer {again.get_json()['token']}"}
    assert client.post("/mp/v1/cards/alipay", headers=headers).status_code == 202
    deliver_all()
    assert card(login["member"]["id"], "alipay").state == "active"
