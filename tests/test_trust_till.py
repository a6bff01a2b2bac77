"""What a hostile till cannot do: spend a member who is not there, see coupon codes by phone,
enrol a phone without consent, or push amounts and balances past their bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.common.clock import advance, frozen
from app.db import unit_of_work
from app.extensions import db
from app.members.codes import issue_member_code
from app.members.models import Member
from app.members.services import create_member
from app.points.services import balance_of, post_entry
from pos_adapter.client import PosClient
from tests.pos_support import make_store, present, refund, sale, signed_client, statuses


def funded_member(points: int, phone: str = "13900000004") -> int:
    with unit_of_work():
        member_id = create_member(source="test", phone=phone).id
        post_entry(member_id, points, kind="adjust", idempotency_key=f"fund-{member_id}")
    return member_id


@pytest.fixture
def till(client, admin_headers, store) -> PosClient:
    return signed_client(client, admin_headers, "SH001")


def test_a_till_cannot_spend_a_members_points_by_naming_the_member_id(till):
    member_id = funded_member(1000)
    response = till.request(
        "POST", "/pos/v1/redemptions", {"sale_id": "S1", "member_id": member_id, "points": 900}
    )
    assert response.status == 403 and response.error_code == "PRESENCE_REQUIRED"
    assert balance_of(member_id) == 1000


def test_identifying_by_phone_gives_no_presence_token_and_cannot_spend(till):
    member_id = funded_member(1000)
    by_phone = till.identify(phone="13900000004")
    assert by_phone.status == 200 and "presence_token" not in by_phone.json
    forged = till.request(
        "POST",
        "/pos/v1/redemptions",
        {"sale_id": "S1", "presence_token": "not-a-token", "points": 900},
    )
    assert forged.status == 403 and forged.error_code == "PRESENCE_REQUIRED"
    assert balance_of(member_id) == 1000


def test_a_presence_token_works_only_on_its_terminal_for_its_member_and_for_ten_minutes(
    client, admin_headers, till
):
    member_id = funded_member(1000)
    other_member = funded_member(1000, phone="13900000005")
    with frozen(datetime(2026, 11, 20, 2, 0, tzinfo=UTC)):
        token = present(till, member_id)
        other_till = signed_client(client, admin_headers, "SH001")
        stolen = other_till.hold(sale_id="S1", presence_token=token, points=100)
        assert stolen.status == 403 and stolen.error_code == "PRESENCE_REQUIRED"
        wrong_member = till.request(
            "POST",
            "/pos/v1/redemptions",
            {"sale_id": "S1", "presence_token": token, "member_id": other_member, "points": 1},
        )
        assert wrong_member.status == 403
        advance(timedelta(minutes=10, seconds=1))
        late = till.hold(sale_id="S1", presence_token=token, points=100)
        assert late.status == 403 and late.error_code == "PRESENCE_REQUIRED"
        fresh = till.hold(sale_id="S1", presence_token=present(till, member_id), points=100)
        assert fresh.status == 201 and fresh.json["member_id"] == member_id
    assert balance_of(member_id) == 900 and balance_of(other_member) == 1000


def test_identify_by_phone_carries_no_coupon_codes(client, admin_headers, till):
    from tests.test_pos_redemptions import issue_coupon

    member_id = funded_member(0, phone="13900000001")
    code = issue_coupon(member_id)
    by_phone = till.identify(phone="13900000001").json
    assert by_phone["coupons"] and code not in str(by_phone)
    by_code = till.identify(member_code=issue_member_code(member_id)[0]).json
    assert [c["code"] for c in by_code["coupons"]] == [code]


def test_registering_at_the_till_needs_consent_and_records_it(till):
    refused = till.identify(phone="13700000021", register=True)
    assert refused.status == 422 and refused.error_code == "CONSENT_REQUIRED"
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0
    enrolled = till.identify(phone="13700000021", register=True, consent=True)
    assert enrolled.status == 200 and enrolled.json["registered"] is True
    from app.members.models import MemberConsent

    consent = db.session.scalars(select(MemberConsent)).one()
    assert consent.member_id == enrolled.json["member_id"]
    assert consent.channel == "pos" and consent.policy_version == "1"
    assert consent.granted_at is not None


def test_a_sale_enrolling_an_unknown_phone_records_its_consent_with_channel_pos(till):
    from app.members.models import MemberConsent

    assert statuses(till.send_events([sale("S1", 1000, member={"phone": "13700000022"})])) == [
        "accepted"
    ]
    consent = db.session.scalars(select(MemberConsent)).one()
    assert consent.channel == "pos"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (sale("BIG1", 9_000_000_000_000, total_fen=9_000_000_000_000), "paid_fen"),
        (sale("BIG2", 100, total_fen=10_000_001), "total_fen"),
        (
            sale("BIG3", 100, lines=[{"sku": "A", "qty": 1, "amount_fen": 10_000_001}]),
            "lines.amount_fen",
        ),
        ({**refund("R-BIG", "S0", 10_000_001)}, "refund_fen"),
    ],
)
def test_amounts_above_pos_max_sale_fen_are_rejected_alone(till, event, field):
    member_id = funded_member(0)
    event = {**event, "member": {"member_id": member_id}} if event["type"] == "sale" else event
    response = till.send_events([event, sale("OK1", 1000, member={"member_id": member_id})])
    assert statuses(response) == ["rejected", "accepted"]
    error = response.json["results"][0]["error"]
    assert error["code"] == "AMOUNT_TOO_LARGE" and field in error["details"]
    assert balance_of(member_id) == 10


def test_paid_above_total_is_rejected(till):
    response = till.send_events([sale("S1", 1000, total_fen=500) | {"total_fen": 500}])
    assert statuses(response) == ["rejected"]
    assert "paid_fen" in response.json["results"][0]["error"]["details"]


def test_a_redemption_total_above_the_limit_is_refused(till):
    member_id = funded_member(1000)
    response = till.hold(
        sale_id="S1", presence_token=present(till, member_id), points=10, total_fen=10**13
    )
    assert response.status == 422
    assert balance_of(member_id) == 1000


def test_the_limit_is_a_setting(make_app, admin_headers, client):
    small = make_app(POS_MAX_SALE_FEN=5000)
    with small.app_context():
        small_client = small.test_client()
        make_store(small_client, admin_headers, "SM1")
        small_till = signed_client(small_client, admin_headers, "SM1")
        response = small_till.send_events([sale("S1", 5001), sale("S2", 5000)])
        assert statuses(response) == ["rejected", "accepted"]


@pytest.mark.parametrize("points", [10**12, -(10**12), 9_223_372_036_854_775_807])
def test_an_admin_adjustment_cannot_push_a_balance_towards_overflow(client, admin_headers, points):
    member_id = funded_member(0)
    response = client.post(
        f"/admin/v1/members/{member_id}/points/adjustments",
        json={"points": points, "reason": "probe"},
        headers=admin_headers,
    )
    assert response.status_code == 422
    assert balance_of(member_id) == 0


def test_an_imported_balance_is_bounded(client, admin_headers):
    response = client.post(
        "/admin/v1/members",
        json={"phone": "13700000031", "points": 9_223_372_036_854_775_800},
        headers=admin_headers,
    )
    assert response.status_code == 422
