"""Earn multipliers: store- and date-bounded rules, member day, refunds with the same rate."""

from datetime import UTC, datetime

from sqlalchemy import select

from app.db import unit_of_work
from app.extensions import db
from app.points.multipliers import create_rule
from app.points.purchases import record_purchase, record_refund
from app.points.services import balance_of
from app.stores.models import Store
from tests.test_points_core import new_member
from tests.test_points_lots import assert_consistent

MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
MAY_8 = datetime(2026, 5, 8, tzinfo=UTC)


def buy(member_id, store_id, paid_fen, at, external_id):
    with unit_of_work():
        purchase, _ = record_purchase(
            source="pos",
            external_id=external_id,
            member_id=member_id,
            store_id=store_id,
            paid_fen=paid_fen,
            occurred_at=at,
        )
    return purchase


def store_ids(client, admin_headers):
    for code in ("SH001", "BJ001"):
        client.post("/admin/v1/stores", json={"code": code, "name": code}, headers=admin_headers)
    return dict(db.session.execute(select(Store.code, Store.id)).all())


def test_a_store_rule_doubles_points_only_in_that_store_and_period(client, admin_headers):
    stores = store_ids(client, admin_headers)
    create_rule(
        name="double in Jing'an",
        percent=200,
        store_code="SH001",
        starts_at=MAY_1,
        ends_at=datetime(2026, 5, 4, tzinfo=UTC),
    )
    member_id = new_member()
    doubled = buy(member_id, stores["SH001"], 1050, datetime(2026, 5, 2, tzinfo=UTC), "a")
    assert (doubled.points_earned, doubled.multiplier_percent) == (21, 200)
    assert buy(member_id, stores["BJ001"], 1050, MAY_1, "b").points_earned == 10
    assert (
        buy(member_id, stores["SH001"], 1050, datetime(2026, 5, 4, tzinfo=UTC), "c").points_earned
        == 10
    )
    assert buy(member_id, None, 1050, MAY_1, "d").points_earned == 10
    assert balance_of(member_id) == 51


def test_the_highest_matching_rule_wins_and_member_day_follows_shanghai_dates():
    create_rule(
        name="member day",
        percent=300,
        day_of_month=8,
        starts_at=MAY_1,
        ends_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    create_rule(name="May", percent=150, starts_at=MAY_1, ends_at=datetime(2026, 6, 1, tzinfo=UTC))
    member_id = new_member()
    # 7 May 16:30 UTC is already 8 May in Shanghai: member day
    assert (
        buy(member_id, None, 1000, datetime(2026, 5, 7, 16, 30, tzinfo=UTC), "a").points_earned
        == 30
    )
    assert (
        buy(member_id, None, 1000, datetime(2026, 5, 7, 15, 30, tzinfo=UTC), "b").points_earned
        == 15
    )
    assert buy(member_id, None, 1000, datetime(2026, 6, 8, 2, tzinfo=UTC), "c").points_earned == 30
    assert buy(member_id, None, 1000, datetime(2026, 6, 9, 2, tzinfo=UTC), "d").points_earned == 10


def test_refunds_keep_what_the_net_amount_earns_at_the_purchases_own_multiplier():
    rule_end = datetime(2026, 5, 2, tzinfo=UTC)
    create_rule(name="double", percent=200, starts_at=MAY_1, ends_at=rule_end)
    member_id = new_member()
    purchase = buy(member_id, None, 3599, MAY_1, "s1")
    assert purchase.points_earned == 71  # floor(35.99 × 2)
    # the rule is over by the time of the refund: the purchase's own ×2 still applies
    with unit_of_work():
        record_refund(purchase, refund_key="r1", refund_fen=1000, occurred_at=MAY_8)
    assert balance_of(member_id) == 51  # net 25.99 × 2
    with unit_of_work():
        record_refund(purchase, refund_key="r2", refund_fen=5000, occurred_at=MAY_8)
    assert balance_of(member_id) == 0
    assert_consistent(member_id)


def test_admin_creates_and_lists_multiplier_rules(client, admin_headers):
    store_ids(client, admin_headers)
    body = {
        "name": "双倍积分",
        "percent": 200,
        "store": "SH001",
        "starts_at": "2026-05-01T00:00:00+08:00",
        "ends_at": "2026-05-04T00:00:00+08:00",
    }
    created = client.post("/admin/v1/points/multiplier-rules", json=body, headers=admin_headers)
    assert created.status_code == 201, created.get_json()
    rule = created.get_json()
    assert rule["percent"] == 200 and rule["created_by"] == "test-admin"
    assert rule["starts_at"] == "2026-04-30T16:00:00+00:00"
    listed = client.get("/admin/v1/points/multiplier-rules", headers=admin_headers).get_json()
    assert [r["id"] for r in listed["items"]] == [rule["id"]]

    naive = client.post(
        "/admin/v1/points/multiplier-rules",
        json={**body, "starts_at": "2026-05-01T00:00:00"},
        headers=admin_headers,
    )
    assert naive.status_code == 422 and "starts_at" in naive.get_json()["error"]["details"]
    backwards = client.post(
        "/admin/v1/points/multiplier-rules",
        json={**body, "ends_at": body["starts_at"]},
        headers=admin_headers,
    )
    assert backwards.get_json()["error"]["code"] == "INVALID_PERIOD"
    unknown = client.post(
        "/admin/v1/points/multiplier-rules", json={**body, "store": "XX"}, headers=admin_headers
    )
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "STORE_NOT_FOUND"
    assert client.get("/admin/v1/points/multiplier-rules").status_code == 401
