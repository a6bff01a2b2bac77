"""Issuing coupons: HQ batches, stock and per-member limits, welcome coupon, points exchange."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.common.clock import advance
from app.coupons import services
from app.coupons.models import Coupon, WelcomeGrant
from app.db import unit_of_work
from app.errors import DomainError
from app.extensions import db
from app.points.models import PointsEntry
from app.points.services import audit_differences, balance_of
from tests.conftest import requires_postgres
from tests.test_coupons_state_machine import (
    _clock,  # noqa: F401  (the frozen clock fixture)
    coupon,
    in_transaction,
    new_member,
    new_template,
    race,
)


def code_of(action) -> str:
    with pytest.raises(DomainError) as info:
        action()
    return info.value.code


def coupons_of(template_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Coupon).where(Coupon.template_id == template_id)
    )


def test_hq_issues_one_coupon_per_listed_member_with_validity_from_issue():
    members = [new_member(f"1380000000{i}") for i in range(3)]
    template = new_template(valid_days=10)
    issued, skipped = services.issue_to_members(template, members, admin_name="ops")
    assert [c.owner_id for c in issued] == members and skipped == []
    first = coupon(issued[0].code)
    assert first.expires_at - first.issued_at == timedelta(days=10)
    assert len({c.code for c in issued}) == 3 and all(len(c.code) == 16 for c in issued)
    assert services.get_template(template).issued_count == 3


def test_members_at_the_per_member_limit_are_skipped_and_listed():
    a, b = new_member("13800000001"), new_member("13800000002")
    template = new_template(per_member_limit=1)
    services.issue_to_members(template, [a], admin_name="ops")
    issued, skipped = services.issue_to_members(template, [a, b, b], admin_name="ops")
    assert [c.owner_id for c in issued] == [b]
    assert skipped == [
        {"member_id": a, "code": "COUPON_LIMIT_REACHED"},
        {"member_id": b, "code": "COUPON_LIMIT_REACHED"},
    ]


def test_a_batch_larger_than_the_stock_left_issues_nothing():
    members = [new_member(f"1380000000{i}") for i in range(3)]
    template = new_template(total_stock=2)
    assert (
        code_of(lambda: services.issue_to_members(template, members, admin_name="ops"))
        == "OUT_OF_STOCK"
    )
    assert coupons_of(template) == 0
    services.issue_to_members(template, members[:2], admin_name="ops")
    assert (
        code_of(lambda: services.issue_to_members(template, members[2:], admin_name="ops"))
        == "OUT_OF_STOCK"
    )


def test_a_paused_template_issues_nothing_until_resumed_and_its_coupons_stay_usable():
    member = new_member()
    template = new_template(points_price=10)
    code = services.issue_to_members(template, [member], admin_name="ops")[0][0].code
    services.set_status(template, "paused")
    assert (
        code_of(lambda: services.issue_to_members(template, [member], admin_name="ops"))
        == "TEMPLATE_PAUSED"
    )
    assert code_of(lambda: services.exchange_for_points(template, member)) == "TEMPLATE_PAUSED"
    assert coupon(code).state == "available"
    services.set_status(template, "active")
    services.issue_to_members(template, [member], admin_name="ops")


def test_a_fixed_window_bounds_validity_and_ends_issuance():
    from app.common.clock import utcnow

    until = utcnow() + timedelta(days=3)
    template = new_template(valid_days=10, valid_until=until)
    member = new_member()
    issued, _ = services.issue_to_members(template, [member], admin_name="ops")
    assert coupon(issued[0].code).expires_at == until
    advance(timedelta(days=3))
    assert (
        code_of(lambda: services.issue_to_members(template, [member], admin_name="ops"))
        == "TEMPLATE_ENDED"
    )


def test_validity_days_count_from_a_later_window_start():
    from app.common.clock import utcnow

    start = utcnow() + timedelta(days=10)
    template = new_template(valid_days=7, valid_from=start)
    issued, _ = services.issue_to_members(template, [new_member()], admin_name="ops")
    found = coupon(issued[0].code)
    assert (found.valid_from, found.expires_at) == (start, start + timedelta(days=7))


def test_unknown_members_are_skipped_by_id_and_merged_ids_go_to_the_survivor():
    a, b = new_member("13800000001"), new_member("13800000002")
    template = new_template()
    issued, skipped = services.issue_to_members(template, [a, 999], admin_name="ops")
    assert [c.owner_id for c in issued] == [a]
    assert skipped == [{"member_id": 999, "code": "MEMBER_NOT_FOUND"}]
    merge(a, b)
    issued, _ = services.issue_to_members(template, [a], admin_name="ops")
    assert issued[0].owner_id == b


# --- welcome coupon --------------------------------------------------------------------------


def welcome(member_id: int):
    with unit_of_work():
        return services.issue_welcome_coupon(member_id)


def merge(absorbed: int, survivor: int) -> None:
    """What the identity merge does around our hook: mark the absorbed member, move coupons."""
    from app.members.models import Member

    with unit_of_work():
        member = db.session.get(Member, absorbed)
        member.merged_into_id, member.status = survivor, "merged"
        services.on_member_merge(absorbed, survivor)


def test_the_welcome_coupon_is_issued_once_per_member():
    member = new_member()
    assert welcome(member) is None  # no welcome template yet
    new_template(welcome=True, name="开卡礼")
    first = welcome(member)
    again = welcome(member)
    assert first is not None and again.code == first.code
    assert coupon(first.code).source == "welcome"


def test_a_merge_never_yields_a_second_welcome_coupon():
    new_template(welcome=True)
    wallet = new_member()  # came in by paying, got the welcome coupon
    phone = new_member("13800000001")
    first = welcome(wallet)
    merge(wallet, phone)
    assert welcome(phone).code == first.code
    assert welcome(wallet).code == first.code  # the absorbed id resolves to the survivor
    assert db.session.scalar(select(func.count()).select_from(Coupon)) == 1
    assert db.session.execute(select(WelcomeGrant.member_id)).scalars().all() == [phone]


def test_a_merge_of_two_members_who_both_got_one_voids_the_unused_duplicate():
    new_template(welcome=True)
    wallet, phone = new_member(), new_member("13800000001")
    theirs, ours = welcome(wallet).code, welcome(phone).code
    merge(wallet, phone)
    assert coupon(theirs).state == "void" and coupon(ours).state == "available"
    assert {coupon(theirs).owner_id, coupon(ours).owner_id} == {phone}


def test_when_the_absorbed_welcome_coupon_was_used_the_survivors_unused_one_is_voided():
    from tests.test_coupons_state_machine import capture, hold, new_store

    new_template(welcome=True)
    wallet, phone = new_member(), new_member("13800000001")
    theirs, ours = welcome(wallet).code, welcome(phone).code
    hold([theirs], wallet, new_store())
    capture()
    merge(wallet, phone)
    assert coupon(theirs).state == "redeemed" and coupon(ours).state == "void"


def test_no_welcome_coupon_when_its_template_is_paused_or_out_of_stock():
    template = new_template(welcome=True, total_stock=1)
    services.set_status(template, "paused")
    assert welcome(new_member("13800000001")) is None
    services.set_status(template, "active")
    assert welcome(new_member("13800000002")) is not None
    assert welcome(new_member("13800000003")) is None


# --- points exchange -------------------------------------------------------------------------


def test_exchange_debits_the_ledger_and_issues_the_coupon_together():
    member = new_member(points=500)
    template = new_template(points_price=200)
    issued = services.exchange_for_points(template, member)
    assert balance_of(member) == 300
    entry = db.session.execute(
        select(PointsEntry).where(PointsEntry.kind == "exchange")
    ).scalar_one()
    assert (entry.points, entry.ref_type, entry.ref_id) == (-200, "coupon", issued.code)
    assert coupon(issued.code).source == "exchange" and coupon(issued.code).owner_id == member
    assert audit_differences() == []


def test_exchange_without_enough_points_issues_nothing_and_debits_nothing():
    member = new_member(points=199)
    template = new_template(points_price=200)
    assert code_of(lambda: services.exchange_for_points(template, member)) == (
        "INSUFFICIENT_POINTS"
    )
    assert balance_of(member) == 199 and coupons_of(template) == 0
    assert services.get_template(template).issued_count == 0


def test_exchange_respects_stock_limit_and_a_points_price():
    member = new_member(points=1000)
    assert (
        code_of(lambda: services.exchange_for_points(new_template(), member))
        == "TEMPLATE_NOT_EXCHANGEABLE"
    )
    limited = new_template(points_price=10, per_member_limit=1)
    services.exchange_for_points(limited, member)
    assert code_of(lambda: services.exchange_for_points(limited, member)) == (
        "COUPON_LIMIT_REACHED"
    )
    scarce = new_template(points_price=10, total_stock=1)
    services.exchange_for_points(scarce, member)
    assert code_of(lambda: services.exchange_for_points(scarce, member)) == "OUT_OF_STOCK"
    assert balance_of(member) == 980
    assert code_of(lambda: services.exchange_for_points(12345, member)) == "TEMPLATE_NOT_FOUND"


def test_an_exchange_repeated_with_its_request_id_debits_once():
    member = new_member(points=500)
    template = new_template(points_price=200)
    first = services.exchange_for_points(template, member, request_id="tap-1")
    again = services.exchange_for_points(template, member, request_id="tap-1")
    assert again.code == first.code and balance_of(member) == 300
    other = new_template(points_price=1)
    assert (
        code_of(lambda: services.exchange_for_points(other, member, request_id="tap-1"))
        == "EXCHANGE_REQUEST_REUSED"
    )


@requires_postgres
def test_members_exchanging_for_the_last_unit_of_stock_have_exactly_one_winner(app):
    members = [new_member(f"1380000000{i}", points=100) for i in range(5)]
    template = new_template(points_price=50, total_stock=1)
    calls = [(lambda m=m: services.exchange_for_points(template, m).owner_id) for m in members]
    results = dict(zip(members, race(app, calls), strict=True))
    winners = [m for m, r in results.items() if r == m]
    assert len(winners) == 1
    assert sorted(r for m, r in results.items() if r != m) == ["OUT_OF_STOCK"] * 4
    winner = winners[0]
    assert coupons_of(template) == 1
    assert sorted(balance_of(m) for m in members) == [50, 100, 100, 100, 100]
    assert balance_of(winner) == 50
    assert audit_differences() == []


@requires_postgres
def test_one_member_exchanging_twice_at_once_within_a_limit_of_one_gets_one(app):
    member = new_member(points=1000)
    template = new_template(points_price=100, per_member_limit=1)
    results = race(app, [lambda: services.exchange_for_points(template, member).code] * 3)
    assert results.count("COUPON_LIMIT_REACHED") == 2 and coupons_of(template) == 1
    assert coupon(next(r for r in results if r != "COUPON_LIMIT_REACHED")).owner_id == member
    assert balance_of(member) == 900


@requires_postgres
def test_two_joins_at_once_issue_one_welcome_coupon(app):
    new_template(welcome=True)
    member = new_member()
    welcome_code = in_transaction(lambda: services.issue_welcome_coupon(member).code)
    codes = race(app, [welcome_code, welcome_code])
    assert codes[0] == codes[1] and len(codes[0]) == 16
    assert db.session.scalar(select(func.count()).select_from(Coupon)) == 1


def test_a_job_issues_one_coupon_per_key_however_often_it_runs():
    member = new_member()
    template = new_template(name="生日券")
    for _ in range(2):
        with unit_of_work():
            issued = services.issue_once(
                template, member, source="birthday", issue_key=f"birthday:2026:{member}"
            )
    assert coupons_of(template) == 1 and coupon(issued.code).source == "birthday"


def test_a_person_who_joins_gets_the_welcome_coupon_and_an_imported_member_does_not():
    from app.members.services import create_member, import_member

    new_template(welcome=True)
    with unit_of_work():
        joined = create_member(source="wechat_pay", identities=[("wechat_openid", "wx", "o1")])
    imported = import_member(phone="13800000009")
    owners = db.session.execute(select(Coupon.owner_id)).scalars().all()
    assert owners == [joined.id]
    assert imported.id not in owners
