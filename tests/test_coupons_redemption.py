"""POS-facing coupon functions: hold for a redemption, capture by the sale, or release."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.common.clock import advance
from app.coupons import services
from app.db import unit_of_work
from app.errors import DomainError
from tests.conftest import requires_postgres
from tests.test_coupons_state_machine import (
    _clock,  # noqa: F401  (the frozen clock fixture)
    capture,
    coupon,
    events,
    hold,
    in_transaction,
    issue,
    new_member,
    new_store,
    new_template,
    race,
    release,
)


@pytest.fixture
def shop():
    return {"owner": new_member("13800000001"), "store": new_store("SH001")}


def refusal(codes, member_id, store_id, total=None, redemption_id="r-x") -> str:
    with pytest.raises(DomainError) as info:
        hold(codes, member_id, store_id, redemption_id=redemption_id, total=total)
    return info.value.code


def test_hold_then_capture_redeems_at_the_store_and_returns_the_discount(shop):
    code = issue(new_template(value_fen=800), shop["owner"])
    assert hold([code], shop["owner"], shop["store"], total=5000) == 800
    assert coupon(code).state == "held"
    capture("r1", "sale-1")
    found = coupon(code)
    assert found.state == "redeemed"
    assert found.redeemed_store_id == shop["store"] and found.sale_ref == "sale-1"
    assert events(code)[-2:] == ["held", "redeemed"]


def test_release_gives_the_coupons_back_and_a_repeat_changes_nothing(shop):
    code = issue(new_template(), shop["owner"])
    hold([code], shop["owner"], shop["store"])
    release("r1")
    release("r1")
    assert coupon(code).state == "available"
    assert events(code) == ["issued", "held", "released"]


def test_a_hold_released_after_the_coupon_expired_leaves_it_expired(shop):
    code = issue(new_template(valid_days=1), shop["owner"])
    hold([code], shop["owner"], shop["store"])
    advance(timedelta(days=2))
    release("r1")
    assert coupon(code).state == "expired"


def test_a_held_coupon_is_captured_even_if_it_expired_meanwhile(shop):
    code = issue(new_template(valid_days=1), shop["owner"])
    hold([code], shop["owner"], shop["store"])
    advance(timedelta(days=2))
    capture("r1", "late-sale")
    assert coupon(code).state == "redeemed"


def test_holding_again_with_the_same_redemption_id_is_idempotent(shop):
    code = issue(new_template(value_fen=300), shop["owner"])
    assert hold([code], shop["owner"], shop["store"], total=1000) == 300
    assert hold([code], shop["owner"], shop["store"], total=1000) == 300
    assert events(code) == ["issued", "held"]


def test_the_same_redemption_id_with_other_coupons_is_refused(shop):
    first = issue(new_template(), shop["owner"])
    second = issue(new_template(), shop["owner"])
    hold([first], shop["owner"], shop["store"], redemption_id="r1")
    assert refusal([second], shop["owner"], shop["store"], redemption_id="r1") == (
        "REDEMPTION_ID_REUSED"
    )
    assert coupon(second).state == "available"


def test_capture_and_release_are_idempotent_and_exclusive(shop):
    code = issue(new_template(), shop["owner"])
    hold([code], shop["owner"], shop["store"])
    capture("r1", "s1")
    capture("r1", "s1")
    with pytest.raises(DomainError) as info, unit_of_work():
        services.release_redemption("r1")
    assert info.value.code == "REDEMPTION_CAPTURED"
    hold([issue(new_template(), shop["owner"])], shop["owner"], shop["store"], "r2")
    release("r2")
    with pytest.raises(DomainError) as info, unit_of_work():
        services.capture_redemption("r2", "s2")
    assert info.value.code == "REDEMPTION_RELEASED"


def test_unknown_redemption_ids_are_no_ops_for_release_and_capture():
    release("never-held")
    capture("never-held", "sale")


def test_each_reason_a_coupon_cannot_be_used_has_its_own_code(shop):
    owner, store = shop["owner"], shop["store"]
    other_store = new_store("HZ001")
    stranger = new_member("13800000009")
    mine = issue(new_template(), owner)
    assert refusal(["NOPE"], owner, store) == "COUPON_NOT_FOUND"
    assert refusal([mine], stranger, store) == "COUPON_NOT_YOURS"
    local = issue(new_template(store_codes=["HZ001"]), owner)
    assert refusal([local], owner, store) == "COUPON_WRONG_STORE"
    assert hold([local], owner, other_store, redemption_id="ok-here") == 500
    big = issue(new_template(threshold_fen=3000), owner)
    assert refusal([big], owner, store, total=2999) == "COUPON_BELOW_THRESHOLD"
    assert hold([big], owner, store, redemption_id="ok-total", total=3000) == 500
    hold([mine], owner, store, redemption_id="used")
    capture("used", "sale-used")
    assert refusal([mine], owner, store) == "COUPON_ALREADY_USED"
    pending = issue(new_template(), owner)
    services.create_gift(pending, owner)
    assert refusal([pending], owner, store) == "COUPON_NOT_AVAILABLE"
    short = issue(new_template(valid_days=1), owner)
    advance(timedelta(days=1))
    assert refusal([short], owner, store) == "COUPON_EXPIRED"  # before the job ran
    assert coupon(short).state == "available"


def test_a_coupon_whose_fixed_window_has_not_started_is_refused(shop):
    from app.common.clock import utcnow

    start = utcnow() + timedelta(days=2)
    template = new_template(valid_days=None, valid_from=start, valid_until=start + timedelta(7))
    code = issue(template, shop["owner"])
    assert coupon(code).valid_from == start
    assert refusal([code], shop["owner"], shop["store"]) == "COUPON_NOT_YET_VALID"
    advance(timedelta(days=2))
    assert hold([code], shop["owner"], shop["store"], redemption_id="later") == 500


def test_one_refused_coupon_holds_none_of_the_others(shop):
    good = issue(new_template(), shop["owner"])
    bad = issue(new_template(threshold_fen=10_000), shop["owner"])
    assert refusal([good, bad], shop["owner"], shop["store"], total=5000) == (
        "COUPON_BELOW_THRESHOLD"
    )
    assert coupon(good).state == "available"
    assert hold([good], shop["owner"], shop["store"], redemption_id="r-x") == 500


def test_discounts_by_kind_add_up_and_never_exceed_the_order_total(shop):
    owner, store = shop["owner"], shop["store"]
    cash = issue(new_template(value_fen=1500), owner)
    pct = issue(new_template(kind="discount", value_fen=None, percent_off=20, cap_fen=300), owner)
    gift = issue(new_template(kind="gift", value_fen=None, gift_sku="TEA-1"), owner)
    assert hold([cash, pct, gift], owner, store, redemption_id="a", total=1000) == 1000
    release("a")
    assert hold([pct, pct], owner, store, redemption_id="b", total=1000) == 200  # deduplicated
    release("b")
    assert hold([pct], owner, store, redemption_id="c", total=5000) == 300  # capped
    release("c")
    assert hold([pct, gift, cash], owner, store, redemption_id="d", total=None) == 1500


def test_coupons_follow_a_merged_member_to_the_till(shop):
    survivor = new_member("13800000002")
    code = issue(new_template(), shop["owner"])
    with unit_of_work():
        services.on_member_merge(shop["owner"], survivor)
    assert hold([code], survivor, shop["store"]) == 500
    assert coupon(code).owner_id == survivor


@requires_postgres
def test_two_tills_holding_the_same_coupon_have_exactly_one_winner(app, shop):
    code = issue(new_template(), shop["owner"])
    other_store = new_store("SH002")
    tills = [
        in_transaction(
            services.hold_for_redemption,
            [code],
            member_id=shop["owner"],
            store_id=store_id,
            redemption_id=f"till-{store_id}",
            order_total_fen=None,
        )
        for store_id in (shop["store"], other_store)
    ]
    results = race(app, tills)
    assert sorted(results, key=str) == [500, "COUPON_NOT_AVAILABLE"]
    assert coupon(code).state == "held"
    assert events(code) == ["issued", "held"]


@requires_postgres
def test_the_same_redemption_sent_twice_at_once_holds_once(app, shop):
    code = issue(new_template(value_fen=700), shop["owner"])
    same = in_transaction(
        services.hold_for_redemption,
        [code],
        member_id=shop["owner"],
        store_id=shop["store"],
        redemption_id="same",
        order_total_fen=None,
    )
    results = race(app, [same, same])
    assert results == [700, 700]
    assert events(code) == ["issued", "held"]


def test_a_refused_hold_writes_nothing_so_the_callers_transaction_goes_on(shop):
    good = issue(new_template(), shop["owner"])
    bad = issue(new_template(threshold_fen=10_000), shop["owner"])
    with unit_of_work():
        with pytest.raises(DomainError):
            services.hold_for_redemption(
                [good, bad],
                member_id=shop["owner"],
                store_id=shop["store"],
                redemption_id="r-partial",
                order_total_fen=5000,
            )
        # the POS layer may still answer the till and commit its own work
    assert coupon(good).state == "available"
    assert hold([good], shop["owner"], shop["store"], redemption_id="r-partial") == 500


def test_a_redemption_without_coupons_holds_nothing_and_settles_quietly(shop):
    assert hold([], shop["owner"], shop["store"], redemption_id="points-only") == 0
    capture("points-only", "sale-p")
    assert hold([], shop["owner"], shop["store"], redemption_id="points-only") == 0


def test_a_released_redemption_id_cannot_hold_again(shop):
    code = issue(new_template(), shop["owner"])
    hold([code], shop["owner"], shop["store"])
    release("r1")
    assert refusal([code], shop["owner"], shop["store"], redemption_id="r1") == (
        "REDEMPTION_RELEASED"
    )
    assert coupon(code).state == "available"


def test_a_redemption_is_limited_to_fifty_coupons(shop):
    codes = [f"C{i}" for i in range(51)]
    assert refusal(codes, shop["owner"], shop["store"]) == "VALIDATION_ERROR"


def test_the_till_sees_only_coupons_usable_now_in_its_store(shop):
    owner, store = shop["owner"], shop["store"]
    usable = issue(new_template(valid_days=3), owner)
    later = issue(new_template(valid_days=5), owner)
    elsewhere = issue(new_template(store_codes=[new_store_code("HZ001")]), owner)
    gifted = issue(new_template(), owner)
    services.create_gift(gifted, owner)
    assert [c.code for c in services.coupons_for_till(owner, store)] == [usable, later]
    assert elsewhere in [c.code for c in services.coupons_for_till(owner)]


def new_store_code(code: str) -> str:
    new_store(code)
    return code
