"""Gifting a coupon to a friend: links, claims, cancels, returns, and the rules around them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.common.clock import advance, utcnow
from app.coupons import services
from app.coupons.jobs import return_expired_gifts
from app.coupons.models import CouponGift
from app.errors import DomainError
from app.extensions import db
from tests.conftest import requires_postgres
from tests.test_coupons_state_machine import (
    _clock,  # noqa: F401  (the frozen clock fixture)
    coupon,
    events,
    hold,
    issue,
    new_member,
    new_store,
    new_template,
    race,
)


@pytest.fixture
def people():
    return [new_member(f"1380000000{i}") for i in range(1, 4)]


def code_of(action) -> str:
    with pytest.raises(DomainError) as info:
        action()
    return info.value.code


def test_a_friend_claims_a_gift_and_owns_the_coupon_with_its_original_validity(people):
    giver, friend, _ = people
    code = issue(new_template(valid_days=7), giver)
    expires = coupon(code).expires_at
    advance(timedelta(days=2))
    gift, _ = services.create_gift(code, giver)
    assert gift.expires_at == utcnow() + timedelta(hours=24)
    claimed = services.claim_gift(gift.token, friend)
    assert claimed.code == code
    found = coupon(code)
    assert (found.owner_id, found.state, found.expires_at) == (friend, "available", expires)
    assert found.issued_to_id == giver  # the friend's per-member limit is not used up


def test_a_gift_link_never_outlives_its_coupon(people):
    giver = people[0]
    code = issue(new_template(valid_days=1), giver)
    advance(timedelta(hours=20))
    gift, _ = services.create_gift(code, giver)
    assert gift.expires_at == coupon(code).expires_at


def test_the_giver_cancels_before_the_claim_and_the_friend_is_told(people):
    giver, friend, _ = people
    code = issue(new_template(), giver)
    gift, _ = services.create_gift(code, giver)
    assert code_of(lambda: services.cancel_gift(gift.token, friend)) == "GIFT_NOT_YOURS"
    services.cancel_gift(gift.token, giver)
    services.cancel_gift(gift.token, giver)  # a repeat is harmless
    assert coupon(code).state == "available" and coupon(code).owner_id == giver
    assert code_of(lambda: services.claim_gift(gift.token, friend)) == "GIFT_CANCELLED"
    assert events(code) == ["issued", "gift_created", "gift_cancelled"]


def test_a_claimed_gift_cannot_be_cancelled_or_claimed_by_someone_else(people):
    giver, friend, third = people
    code = issue(new_template(), giver)
    gift, _ = services.create_gift(code, giver)
    services.claim_gift(gift.token, friend)
    assert services.claim_gift(gift.token, friend).code == code  # same friend again: fine
    assert code_of(lambda: services.claim_gift(gift.token, third)) == "GIFT_ALREADY_CLAIMED"
    assert code_of(lambda: services.cancel_gift(gift.token, giver)) == "GIFT_ALREADY_CLAIMED"
    assert coupon(code).owner_id == friend


def test_no_one_claims_their_own_gift(people):
    giver = people[0]
    gift, _ = services.create_gift(issue(new_template(), giver), giver)
    assert code_of(lambda: services.claim_gift(gift.token, giver)) == "GIFT_OWN_CLAIM"


def test_only_the_owner_gifts_and_only_giftable_templates(people):
    giver, friend, _ = people
    code = issue(new_template(giftable=False), giver)
    assert code_of(lambda: services.create_gift(code, giver)) == "COUPON_NOT_GIFTABLE"
    mine = issue(new_template(), giver)
    assert code_of(lambda: services.create_gift(mine, friend)) == "COUPON_NOT_YOURS"
    assert code_of(lambda: services.create_gift("NOPE", giver)) == "COUPON_NOT_FOUND"
    assert code_of(lambda: services.claim_gift("nope", friend)) == "GIFT_NOT_FOUND"


def test_a_pending_gift_cannot_be_gifted_again_or_redeemed(people):
    giver = people[0]
    code = issue(new_template(), giver)
    services.create_gift(code, giver)
    assert code_of(lambda: services.create_gift(code, giver)) == "COUPON_NOT_AVAILABLE"
    assert code_of(lambda: hold([code], giver, new_store())) == "COUPON_NOT_AVAILABLE"


def test_a_received_coupon_is_regifted_only_if_the_template_allows(people):
    giver, friend, third = people
    plain = issue(new_template(), giver)
    gift, _ = services.create_gift(plain, giver)
    services.claim_gift(gift.token, friend)
    assert code_of(lambda: services.create_gift(plain, friend)) == "COUPON_REGIFT_NOT_ALLOWED"
    chain = issue(new_template(regift_allowed=True), giver)
    gift, _ = services.create_gift(chain, giver)
    services.claim_gift(gift.token, friend)
    again, _ = services.create_gift(chain, friend)
    services.claim_gift(again.token, third)
    assert coupon(chain).owner_id == third and coupon(chain).gift_count == 2


def test_an_unclaimed_gift_returns_to_the_giver_when_it_expires(people):
    giver, friend, _ = people
    code = issue(new_template(valid_days=7), giver)
    gift, _ = services.create_gift(code, giver)
    assert return_expired_gifts() == {"returned": 0}
    advance(timedelta(hours=24))
    assert code_of(lambda: services.claim_gift(gift.token, friend)) == "GIFT_EXPIRED"
    assert return_expired_gifts() == {"returned": 1}
    assert return_expired_gifts() == {"returned": 0}  # safe to run twice
    assert coupon(code).state == "available" and coupon(code).owner_id == giver
    assert code_of(lambda: services.claim_gift(gift.token, friend)) == "GIFT_EXPIRED"
    assert events(code)[-1] == "gift_returned"


def test_a_gift_returned_after_its_coupon_ran_out_comes_back_expired(people):
    giver = people[0]
    code = issue(new_template(valid_days=1), giver)
    services.create_gift(code, giver)
    advance(timedelta(days=1))
    assert return_expired_gifts() == {"returned": 1}
    assert coupon(code).state == "expired"


def test_voiding_a_coupon_in_a_gift_cancels_the_gift(people):
    giver, friend, _ = people
    code = issue(new_template(), giver)
    gift, _ = services.create_gift(code, giver)
    services.void_coupon(code, admin_name="ops", reason="fraud")
    assert db.session.get(CouponGift, gift.id).state == "cancelled"
    assert code_of(lambda: services.claim_gift(gift.token, friend)) == "GIFT_CANCELLED"


def test_a_merge_moves_pending_gifts_so_the_survivor_can_cancel_them(people):
    giver, survivor, _ = people
    code = issue(new_template(), giver)
    gift, _ = services.create_gift(code, giver)
    from app.db import unit_of_work

    with unit_of_work():
        services.on_member_merge(giver, survivor)
    assert code_of(lambda: services.claim_gift(gift.token, survivor)) == "GIFT_OWN_CLAIM"
    services.cancel_gift(gift.token, survivor)
    assert coupon(code).owner_id == survivor and coupon(code).state == "available"


@requires_postgres
def test_two_friends_claiming_at_once_have_exactly_one_winner(app):
    giver = new_member("13800000001")
    friends = [new_member(f"1390000000{i}") for i in range(4)]
    code = issue(new_template(), giver)
    gift, _ = services.create_gift(code, giver)
    token = gift.token
    calls = [(lambda f=f: services.claim_gift(token, f).owner_id) for f in friends]
    results = dict(zip(friends, race(app, calls), strict=True))
    winners = [f for f, r in results.items() if r == f]
    assert len(winners) == 1
    assert sorted(r for f, r in results.items() if r != f) == ["GIFT_ALREADY_CLAIMED"] * 3
    assert coupon(code).owner_id == winners[0]
    assert events(code).count("gift_claimed") == 1
