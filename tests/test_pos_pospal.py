"""The Pospal (银豹) adapter: its tickets become our events, through the same signed batch."""

from __future__ import annotations

import pytest

from app.db import unit_of_work
from app.members.services import create_member
from app.points.services import balance_of
from pos_adapter.vendors import PospalAdapter, VendorTicketError


def pospal_sell(sn: str, **extra) -> dict:
    ticket = {
        "cashierUid": 832101480292933201,
        "customerUid": 0,
        "sn": sn,
        "datetime": "2026-11-20 16:02:12",
        "totalAmount": 72.5,
        "totalProfit": 42,
        "discount": 100,
        "rounding": 0,
        "ticketType": "SELL",
        "invalid": 0,
        "items": [
            {
                "productUid": 1001,
                "productBarcode": "6901234567890",
                "name": "乌龙茶",
                "quantity": 2,
                "sellPrice": 25,
                "totalAmount": 50,
            },
            {
                "productUid": 1002,
                "name": "散装瓜子",
                "quantity": 0.45,
                "sellPrice": 50,
                "totalAmount": 22.5,
            },
        ],
        "payments": [{"code": "payCode_7", "amount": 60}, {"code": "payCode_1", "amount": 12.5}],
    }
    ticket.update(extra)
    return ticket


def test_a_sell_ticket_becomes_one_sale_in_fen_with_store_local_time():
    (event,) = PospalAdapter().to_events(pospal_sell("201511121602084680006"))
    assert event["type"] == "sale" and event["sale_id"] == "201511121602084680006"
    assert event["occurred_at"] == "2026-11-20T16:02:12+08:00"
    assert (event["total_fen"], event["paid_fen"]) == (7250, 7250)
    assert event["lines"] == [
        {"sku": "6901234567890", "qty": "2", "amount_fen": 5000},
        {"sku": "1002", "qty": "0.45", "amount_fen": 2250},
    ]


def test_points_tenders_earn_nothing_and_voided_tickets_net_to_zero():
    adapter = PospalAdapter(non_money_pay_codes=frozenset({"payCode_1"}))
    sale, void = adapter.to_events(pospal_sell("SN1", invalid=1))
    assert sale["paid_fen"] == 6000
    assert void == {
        "type": "return",
        "return_id": "void:SN1",
        "sale_id": "SN1",
        "occurred_at": sale["occurred_at"],
        "refund_fen": 6000,
    }


def test_a_return_ticket_needs_its_sale_and_bad_amounts_are_refused():
    adapter = PospalAdapter()
    ticket = pospal_sell("SN2", ticketType="sell_return", totalAmount=-22.5, payments=[])
    with pytest.raises(VendorTicketError) as info:
        adapter.to_events(ticket)
    assert info.value.code == "ORIGINAL_SALE_REQUIRED"
    (event,) = adapter.to_events(ticket | {"sellTicketSn": "SN1"})
    assert (event["type"], event["sale_id"], event["refund_fen"]) == ("return", "SN1", 2250)
    with pytest.raises(VendorTicketError):
        adapter.to_events(pospal_sell("SN3", totalAmount=1.005, payments=[]))


def test_pospal_tickets_post_through_the_signed_endpoint(client, admin_headers, store):
    from tests.pos_support import signed_client

    till = signed_client(client, admin_headers, "SH001")
    with unit_of_work():
        member_id = create_member(source="test", phone="13600000001").id
    sell = pospal_sell("SN10", member={"member_id": member_id})
    back = pospal_sell(
        "SN11", ticketType="SELL_RETURN", sellTicketSn="SN10", totalAmount=-22.5, payments=[]
    )
    broken = {"sn": "SN12", "ticketType": "EXCHANGE", "datetime": "2026-11-20 10:00:00"}
    response = till.send_tickets("pospal", [back, sell, broken])
    assert response.status == 200
    assert [(r["ticket"], r["status"]) for r in response.json["results"]] == [
        ("SN11", "parked"),
        ("SN10", "accepted"),
        ("SN12", "rejected"),
    ]
    assert balance_of(member_id) == 72 * 5000 // 7250  # floor(E × (T − R) / T) = 49
    again = till.send_tickets("pospal", [sell, back]).json["results"]
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    unknown = till.send_tickets("keruyun", [sell])
    assert unknown.status == 404 and unknown.error_code == "UNKNOWN_VENDOR"
