"""Sale and return events: earn on paid money, lines kept, idempotent, parked returns."""

from __future__ import annotations

from sqlalchemy import select

from app.db import unit_of_work
from app.extensions import db
from app.members.codes import issue_member_code
from app.members.services import create_member, find_by_identity, find_by_phone
from app.points.models import Purchase
from app.points.services import audit_differences, balance_of
from app.pos.models import PosReturn, PosSale, PosSaleLine
from tests.pos_support import make_store, refund, sale, signed_client, statuses


def member(phone: str) -> int:
    with unit_of_work():
        return create_member(source="test", phone=phone).id


def test_a_sale_earns_points_on_the_money_paid_and_keeps_its_lines(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    lines = [
        {"sku": "TEA-01", "qty": 2, "amount_fen": 3000},
        {"sku": "CAKE-9", "qty": 0.5, "amount_fen": 1599},
    ]
    event = sale("S1", 3899, total_fen=4599, lines=lines, member={"phone": "+8613800000001"})
    response = till.send_events([event])
    result = response.json["results"][0]
    assert result["status"] == "accepted" and result["points_earned"] == 38
    buyer = find_by_phone("13800000001")
    assert buyer is not None and result["member_id"] == buyer.id
    assert balance_of(buyer.id) == 38
    stored = db.session.scalars(select(PosSaleLine).order_by(PosSaleLine.line_no)).all()
    assert [(x.sku, str(x.qty), x.amount_fen) for x in stored] == [
        ("TEA-01", "2.000", 3000),
        ("CAKE-9", "0.500", 1599),
    ]
    assert db.session.scalar(select(PosSale.total_fen)) == 4599


def test_the_same_sale_again_is_a_duplicate_and_other_content_a_conflict(
    client, admin_headers, store
):
    till = signed_client(client, admin_headers, "SH001")
    buyer = member("13800000002")
    first = sale("S2", 1000, member={"member_id": buyer})
    same_instant = {**first, "occurred_at": "2026-11-20T02:00:00Z"}
    changed = {**first, "paid_fen": 900}
    response = till.send_events([first, same_instant, changed])
    assert statuses(response) == ["accepted", "duplicate", "conflict"]
    assert response.json["results"][2]["error"]["code"] == "SALE_ID_CONFLICT"
    assert balance_of(buyer) == 10


def test_a_bad_event_is_rejected_with_its_code_and_its_neighbours_still_apply(
    client, admin_headers, store
):
    till = signed_client(client, admin_headers, "SH001")
    response = till.send_events(
        [
            sale("S3", 500),
            sale("S4", 800, total_fen=700) | {"total_fen": 700},
            {"type": "refund", "sale_id": "S3"},
            sale("S5", 100, member={"member_code": "HY00000000000000000000"}),
            sale("S6", 600),
        ]
    )
    assert statuses(response) == ["accepted", "rejected", "rejected", "rejected", "accepted"]
    codes = [r.get("error", {}).get("code") for r in response.json["results"]]
    assert codes == [None, "VALIDATION_ERROR", "UNKNOWN_EVENT_TYPE", "MEMBER_CODE_INVALID", None]
    assert "paid_fen" in response.json["results"][1]["error"]["details"]
    assert sorted(db.session.scalars(select(PosSale.sale_id))) == ["S3", "S6"]


def test_amounts_must_be_integer_fen_and_times_must_carry_an_offset(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    response = till.send_events(
        [
            sale("S7", 10) | {"paid_fen": 9.5},
            sale("S8", 10) | {"occurred_at": "2026-11-20T10:00:00"},
        ]
    )
    assert statuses(response) == ["rejected", "rejected"]
    assert "paid_fen" in response.json["results"][0]["error"]["details"]
    assert "occurred_at" in response.json["results"][1]["error"]["details"]


def test_a_malformed_envelope_fails_the_whole_request(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    too_many = till.send_events([sale(f"B{i}", 100) for i in range(101)])
    assert too_many.status == 422 and too_many.error_code == "VALIDATION_ERROR"
    not_a_list = till.request("POST", "/pos/v1/events", {"events": {"type": "sale"}})
    assert not_a_list.status == 422
    assert db.session.scalars(select(PosSale)).first() is None


def test_a_member_code_from_the_app_names_the_member(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    buyer = member("13800000003")
    code, _ = issue_member_code(buyer)
    response = till.send_events([sale("S9", 2500, member={"member_code": code})])
    assert response.json["results"][0]["member_id"] == buyer
    assert balance_of(buyer) == 25


def test_paying_with_a_wallet_at_the_till_makes_the_payer_a_member_once(
    client, admin_headers, store
):
    till = signed_client(client, admin_headers, "SH001")
    response = till.send_events(
        [
            sale("S10", 1200, member={"wechat_openid": "o-payer-1"}),
            sale("S11", 800, member={"wechat_openid": "o-payer-1"}),
            sale("S12", 500, member={"alipay_user_id": "2088000000000001"}),
        ]
    )
    assert statuses(response) == ["accepted"] * 3
    wechat = find_by_identity("wechat_openid", "o-payer-1", "")
    alipay = find_by_identity("alipay_user_id", "2088000000000001")
    assert wechat is not None and alipay is not None and wechat.id != alipay.id
    assert wechat.source == "pos_wechat_pay" and wechat.phone is None
    assert balance_of(wechat.id) == 20 and balance_of(alipay.id) == 5


def test_wechat_payers_are_keyed_under_the_configured_appid(make_app, admin_headers, store):
    other = make_app(WECHAT_APPID="wx-brand", WECHAT_APP_SECRET="s")
    db.session.remove()  # SQLite: let the other app's connection write
    with other.app_context():
        till = signed_client(other.test_client(), admin_headers, "SH001")
        till.send_events([sale("S13", 300, member={"wechat_openid": "o-payer-2"})])
        assert find_by_identity("wechat_openid", "o-payer-2", "wx-brand") is not None
        assert find_by_identity("wechat_openid", "o-payer-2", "") is None


def test_a_return_before_its_sale_is_parked_then_applied_when_the_sale_arrives(
    client, admin_headers, store
):
    till = signed_client(client, admin_headers, "SH001")
    buyer = member("13800000004")
    early = till.send_events([refund("R1", "S20", 1000)])
    assert statuses(early) == ["parked"]
    assert statuses(till.send_events([refund("R1", "S20", 1000)])) == ["duplicate"]
    late = till.send_events([sale("S20", 3000, member={"member_id": buyer})])
    assert late.json["results"][0]["returns_applied"] == ["R1"]
    assert balance_of(buyer) == 20
    assert db.session.scalar(select(PosReturn.state)) == "applied"
    purchase = db.session.scalar(select(Purchase))
    assert (purchase.refunded_fen, purchase.points_earned) == (1000, 20)
    after = till.send_events([refund("R2", "S20", 2000)])
    assert statuses(after) == ["accepted"] and balance_of(buyer) == 0


def test_a_return_cannot_refund_more_than_was_paid(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    till.send_events([sale("S21", 1000)])
    response = till.send_events([refund("R3", "S21", 600), refund("R4", "S21", 600)])
    assert statuses(response) == ["accepted", "rejected"]
    assert response.json["results"][1]["error"]["code"] == "REFUND_EXCEEDS_PAID"


def test_sale_ids_belong_to_the_terminals_store(client, admin_headers, store):
    make_store(client, admin_headers, "BJ001")
    shanghai = signed_client(client, admin_headers, "SH001")
    beijing = signed_client(client, admin_headers, "BJ001")
    buyer = member("13800000005")
    shanghai.send_events([sale("S30", 1000, member={"member_id": buyer})])
    assert statuses(beijing.send_events([refund("R30", "S30", 1000)])) == ["parked"]
    assert balance_of(buyer) == 10  # the Shanghai sale is untouched
    other = beijing.send_events([sale("S30", 2000, member={"member_id": buyer})])
    assert statuses(other) == ["accepted"]
    assert balance_of(buyer) == 20  # Beijing's S30 earned 20, its parked return took 10
    assert audit_differences() == []


def test_a_sku_rule_tags_the_buyer_once_however_often_the_sale_is_replayed(
    client, admin_headers, store
):
    from app.tags.catalog import create_group
    from app.tags.models import MemberTagEvent
    from app.tags.rules import create_rule
    from app.tags.services import member_tags

    group = create_group("肤质", exclusive=False, tag_names=["油性皮肤"])
    with unit_of_work():
        create_rule(group.tags[0].id, ["OIL-CLEANSER", "OIL-TONER"])
    till = signed_client(client, admin_headers, "SH001")
    buyer = member("13700000001")
    event = sale(
        "T1",
        8800,
        member={"phone": "13700000001"},
        lines=[{"sku": "OIL-TONER", "qty": 1, "amount_fen": 8800}],
    )
    for _ in range(3):
        till.send_events([event])
    assert [t.tag.name for t in member_tags(buyer)] == ["油性皮肤"]
    events = db.session.scalars(select(MemberTagEvent)).all()
    assert [(e.action, e.source, e.sale_key) for e in events] == [("added", "rule", "SH001:T1")]
