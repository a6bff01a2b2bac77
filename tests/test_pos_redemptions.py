"""Redemptions at the till: hold, capture by the sale, release, expiry, races, hooks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.common.clock import advance, frozen
from app.db import unit_of_work
from app.errors import Conflict
from app.extensions import db
from app.members.services import create_member
from app.points.models import PointsEntry
from app.points.services import balance_of, post_entry
from app.pos.hooks import SALE_HOOKS
from app.pos.jobs import expire_redemptions
from app.pos.models import PosRedemption, PosSale
from pos_adapter.client import PosClient
from tests.conftest import requires_postgres
from tests.pos_support import make_store, refund, sale, signed_client, statuses


def funded_member(points: int, phone: str = "13900000001") -> int:
    with unit_of_work():
        member_id = create_member(source="test", phone=phone).id
        post_entry(member_id, points, kind="adjust", idempotency_key=f"fund-{member_id}")
    return member_id


@pytest.fixture
def till(client, admin_headers, store) -> PosClient:
    return signed_client(client, admin_headers, "SH001")


def test_held_points_are_spent_at_once_and_the_sale_captures_them(till):
    buyer = funded_member(1000)
    held = till.hold(sale_id="S1", member_id=buyer, points=300)
    assert held.status == 201
    assert held.json["discount_fen"] == 300 and held.json["points"] == 300
    assert held.json["state"] == "held" and held.json["expires_at"]
    assert balance_of(buyer) == 700
    response = till.send_events([sale("S1", 2700, total_fen=3000, redemption_id=held.json["id"])])
    result = response.json["results"][0]
    assert result["status"] == "accepted" and result["member_id"] == buyer
    assert balance_of(buyer) == 700 + 27
    assert db.session.scalar(select(PosRedemption.state)) == "captured"
    late = till.release(held.json["id"])
    assert late.status == 409 and late.error_code == "REDEMPTION_CAPTURED"
    assert balance_of(buyer) == 727


def test_releasing_gives_the_points_back_once_and_the_sale_can_no_longer_use_them(till):
    buyer = funded_member(500)
    held = till.hold(sale_id="S2", member_id=buyer, points=500).json
    assert balance_of(buyer) == 0
    assert till.release(held["id"]).json["state"] == "released"
    assert till.release(held["id"]).status == 200
    assert balance_of(buyer) == 500
    response = till.send_events([sale("S2", 1000, redemption_id=held["id"])])
    assert response.json["results"][0]["error"]["code"] == "REDEMPTION_NOT_HELD"
    assert balance_of(buyer) == 500


def test_repeating_a_hold_returns_it_and_a_different_one_for_the_same_sale_is_refused(till):
    buyer = funded_member(1000)
    first = till.hold(sale_id="S3", member_id=buyer, points=200).json
    again = till.hold(sale_id="S3", member_id=buyer, points=200).json
    assert again["id"] == first["id"] and balance_of(buyer) == 800
    other = till.hold(sale_id="S3", member_id=buyer, points=100)
    assert other.status == 409 and other.error_code == "REDEMPTION_EXISTS"
    till.release(first["id"])
    assert till.hold(sale_id="S3", member_id=buyer, points=100).status == 201


def test_a_hold_beyond_the_balance_or_the_total_is_refused(till):
    buyer = funded_member(100)
    short = till.hold(sale_id="S4", member_id=buyer, points=101)
    assert short.status == 409 and short.error_code == "INSUFFICIENT_POINTS"
    over = till.hold(sale_id="S4", member_id=buyer, points=100, total_fen=50)
    assert over.status == 409 and over.error_code == "DISCOUNT_EXCEEDS_TOTAL"
    nothing = till.hold(sale_id="S4", member_id=buyer, points=0)
    assert nothing.status == 422 and nothing.error_code == "NOTHING_TO_REDEEM"
    assert balance_of(buyer) == 100


def issue_coupon(
    member_id: int, *, value_fen: int = 500, threshold_fen: int | None = None, key: str = "c1"
) -> str:
    from app.coupons.issuance import issue_once
    from app.coupons.templates import create_template

    template = create_template(
        {
            "name": f"满减{key}",
            "kind": "cash_off",
            "value_fen": value_fen,
            "threshold_fen": threshold_fen,
            "valid_days": 7,
            "giftable": False,
        }
    )
    with unit_of_work():
        return issue_once(template.id, member_id, source="admin", issue_key=key).code


def coupon_state(code: str) -> str:
    from app.coupons.models import Coupon

    db.session.expire_all()
    return db.session.scalars(select(Coupon.state).where(Coupon.code == code)).one()


def test_identify_lists_the_coupons_usable_at_this_till(till):
    buyer = funded_member(0)
    code = issue_coupon(buyer)
    body = till.identify(phone="13900000001").json
    assert [c["code"] for c in body["coupons"]] == [code]
    assert body["coupons"][0]["value_fen"] == 500


def test_a_coupon_and_points_are_held_together_and_the_sale_redeems_both(till):
    buyer = funded_member(300)
    code = issue_coupon(buyer)
    held = till.hold(sale_id="S5", member_id=buyer, points=200, coupons=[code], total_fen=5000)
    assert held.status == 201, held.json
    assert held.json["discount_fen"] == 500 + 200
    assert coupon_state(code) == "held" and balance_of(buyer) == 100
    result = till.send_events(
        [
            sale(
                "S5",
                4300,
                total_fen=5000,
                redemption_id=held.json["id"],
                member={"member_id": buyer},
            )
        ]
    )
    assert statuses(result) == ["accepted"]
    assert coupon_state(code) == "redeemed"
    assert balance_of(buyer) == 100 + 43


def test_a_released_redemption_gives_the_coupon_back(till):
    buyer = funded_member(0)
    code = issue_coupon(buyer)
    held = till.hold(sale_id="S6", member_id=buyer, coupons=[code], total_fen=5000)
    assert till.release(held.json["id"]).status in (200, 204)
    assert coupon_state(code) == "available"


def test_a_coupon_that_cannot_be_used_is_refused_with_its_reason_and_nothing_is_held(till):
    buyer = funded_member(300)
    code = issue_coupon(buyer, threshold_fen=10000)
    response = till.hold(sale_id="S7", member_id=buyer, points=100, coupons=[code], total_fen=5000)
    assert response.status == 409 or response.status == 422
    assert response.error_code == "COUPON_BELOW_THRESHOLD"
    assert coupon_state(code) == "available" and balance_of(buyer) == 300
    assert db.session.scalars(select(PosRedemption)).first() is None
    other = funded_member(0, phone="13900000002")
    theirs = issue_coupon(other, key="c2")
    refused = till.hold(sale_id="S8", member_id=buyer, coupons=[theirs], total_fen=5000)
    assert refused.error_code == "COUPON_NOT_YOURS"


def test_uncaptured_holds_expire_after_30_minutes(app, till):
    buyer = funded_member(400)
    with frozen(datetime(2026, 11, 20, 2, 0, tzinfo=UTC)):
        held = till.hold(sale_id="S6", member_id=buyer, points=400).json
        advance(timedelta(minutes=29))
        assert expire_redemptions() == {"expired": 0}
        advance(timedelta(minutes=1))
        result = app.test_cli_runner().invoke(args=["pos", "expire-holds"])
        assert "expired 1 redemption hold(s)" in result.output
        assert expire_redemptions() == {"expired": 0}
        response = till.send_events([sale("S6", 1000, redemption_id=held["id"])])
    assert response.json["results"][0]["error"]["code"] == "REDEMPTION_NOT_HELD"
    assert balance_of(buyer) == 400
    assert db.session.scalar(select(PosRedemption.state)) == "expired"


def test_a_hold_past_its_expiry_cannot_be_captured_even_before_the_job_runs(till):
    buyer = funded_member(400)
    with frozen(datetime(2026, 11, 20, 2, 0, tzinfo=UTC)):
        held = till.hold(sale_id="S7", member_id=buyer, points=100).json
        advance(timedelta(minutes=31))
        response = till.send_events([sale("S7", 1000, redemption_id=held["id"])])
    assert response.json["results"][0]["error"]["code"] == "REDEMPTION_EXPIRED"
    assert db.session.scalars(select(PosSale)).first() is None


def test_another_stores_terminal_can_neither_release_nor_capture_a_hold(
    client, admin_headers, till
):
    make_store(client, admin_headers, "BJ001")
    beijing = signed_client(client, admin_headers, "BJ001")
    buyer = funded_member(300)
    held = till.hold(sale_id="S8", member_id=buyer, points=300).json
    refused = beijing.release(held["id"])
    assert refused.status == 404 and refused.error_code == "REDEMPTION_NOT_FOUND"
    response = beijing.send_events([sale("S8", 1000, redemption_id=held["id"])])
    assert response.json["results"][0]["error"]["code"] == "REDEMPTION_NOT_FOUND"
    assert db.session.scalar(select(PosRedemption.state)) == "held"
    assert balance_of(buyer) == 0


def test_a_sale_naming_another_member_cannot_capture_the_hold(till):
    buyer = funded_member(300)
    stranger = funded_member(0, "13900000002")
    held = till.hold(sale_id="S9", member_id=buyer, points=300).json
    event = sale("S9", 1000, redemption_id=held["id"], member={"member_id": stranger})
    result = till.send_events([event]).json["results"][0]
    assert result["error"]["code"] == "REDEMPTION_MEMBER_MISMATCH"


def test_returns_give_back_redeemed_points_in_proportion_to_the_refunded_money(till):
    buyer = funded_member(1000)
    held = till.hold(sale_id="S10", member_id=buyer, points=500).json
    till.send_events([sale("S10", 2500, total_fen=3000, redemption_id=held["id"])])
    assert balance_of(buyer) == 500 + 25
    half = till.send_events([refund("R1", "S10", 1250)]).json["results"][0]
    assert (half["points_taken"], half["points_returned"]) == (13, 250)
    rest = till.send_events([refund("R2", "S10", 1250)]).json["results"][0]
    assert (rest["points_taken"], rest["points_returned"]) == (12, 250)
    assert balance_of(buyer) == 1000
    kinds = db.session.scalars(
        select(PointsEntry.kind).where(PointsEntry.kind == "return_of_redeemed")
    ).all()
    assert len(kinds) == 2


def test_sale_hooks_run_once_for_a_member_sale_and_a_failing_hook_rejects_the_sale(till):
    buyer = funded_member(0)
    calls: list[tuple] = []

    def tag_by_sku(member_id: int, store_id: int, skus: list[str], sale_key: str) -> None:
        if "BAD" in skus:
            raise Conflict("rule failed", code="TAG_RULE_FAILED")
        calls.append((member_id, store_id, skus, sale_key))

    SALE_HOOKS.append(tag_by_sku)
    try:
        lines = [
            {"sku": "OILY-SKIN", "qty": 1, "amount_fen": 500},
            {"sku": "TEA", "qty": 2, "amount_fen": 500},
        ]
        event = sale("S11", 1000, member={"member_id": buyer}, lines=lines)
        anonymous = sale("S12", 1000)
        bad = sale("S13", 1000, member={"member_id": buyer}, lines=[lines[0] | {"sku": "BAD"}])
        response = till.send_events([event, event, anonymous, bad])
    finally:
        SALE_HOOKS.remove(tag_by_sku)
    assert statuses(response) == ["accepted", "duplicate", "accepted", "rejected"]
    assert response.json["results"][3]["error"]["code"] == "TAG_RULE_FAILED"
    store_id = db.session.scalar(select(PosSale.store_id))
    # a batch refused by a hook is applied again without the refused event: a hook may be
    # called again for a neighbour, whose first call's writes were rolled back
    assert set(map(str, calls)) == {str((buyer, store_id, ["OILY-SKIN", "TEA"], "SH001:S11"))}
    assert balance_of(buyer) == 10


@requires_postgres
def test_two_tills_racing_for_the_last_points_have_exactly_one_winner(
    app, client, admin_headers, store
):
    buyer = funded_member(500)
    tills = [signed_client(client, admin_headers, "SH001") for _ in range(4)]
    results: list[tuple[int, str | None]] = []

    def race(index: int) -> None:
        own = PosClient.for_flask(
            app.test_client(), terminal_id=tills[index].terminal_id, secret=tills[index].secret
        )
        response = own.hold(sale_id=f"RACE-{index}", member_id=buyer, points=500)
        results.append((response.status, response.error_code))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(201, None)] + [(409, "INSUFFICIENT_POINTS")] * 3
    assert balance_of(buyer) == 0
