"""A member's rights over their personal data: consent before a phone is stored, export,
erasure (by the member or HQ) with the books still balancing, and joining again afterwards."""

from __future__ import annotations

from sqlalchemy import func, select

from app.audit.services import run_audit
from app.clerks.models import ClerkNote
from app.coupons.models import Coupon
from app.db import unit_of_work
from app.extensions import db
from app.members.binding import bind_phone
from app.members.models import Member, MemberConsent, MemberErasure, MemberIdentity
from app.members.services import create_member
from app.points.models import PointsEntry
from app.points.services import balance_of
from app.tags.models import MemberTag
from miniprogram_api.auth import issue_member_token
from tests.pos_support import present, sale, signed_client, statuses
from tests.test_clerk_auth import clerk_headers, make_clerk
from tests.test_foundation_http import assert_error


def headers_of(member_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_member_token(member_id, 'wechat')}"}


def rich_member(client, admin_headers) -> tuple[int, str]:
    """A member with a phone, a name, a WeChat identity, points, a coupon, a note and a tag."""
    make_clerk("SH001", "lily")
    with unit_of_work():
        member = create_member(
            source="wechat_miniprogram",
            identities=[("wechat_openid", "wx1", "openid-1")],
            name="王女士",
        )
        member_id = member.id
    bind_phone(member_id, "13800000001", channel="wechat")
    till = signed_client(client, admin_headers, "SH001")
    assert statuses(till.send_events([sale("S1", 5000, member={"member_id": member_id})])) == [
        "accepted"
    ]
    template = client.post(
        "/admin/v1/coupon-templates",
        json={"name": "满30减5", "kind": "cash_off", "value_fen": 500, "valid_days": 30},
        headers=admin_headers,
    ).get_json()
    issued = client.post(
        f"/admin/v1/coupon-templates/{template['id']}/issue",
        json={"member_ids": [member_id]},
        headers=admin_headers,
    )
    code = issued.get_json()["items"][0]["code"]
    clerk = clerk_headers(client, "lily")
    client.post("/clerk/v1/members/lookup", json={"phone": "13800000001"}, headers=clerk)
    client.post(f"/clerk/v1/members/{member_id}/notes", json={"text": "喜欢乌龙"}, headers=clerk)
    group = client.post(
        "/admin/v1/tag-groups",
        json={"name": "口味", "exclusive": False, "tags": ["乌龙"]},
        headers=admin_headers,
    ).get_json()
    tagged = client.post(
        f"/clerk/v1/members/{member_id}/tags",
        json={"add": [group["tags"][0]["id"]]},
        headers=clerk,
    )
    assert tagged.status_code == 200, tagged.get_json()
    return member_id, code


def test_consent_is_recorded_before_a_phone_is_stored_in_every_channel(client, admin_headers):
    with unit_of_work():
        member_id = create_member(source="wechat_miniprogram").id
    assert db.session.scalar(select(func.count()).select_from(MemberConsent)) == 0
    bind_phone(member_id, "13800000002", channel="wechat")
    imported = client.post(
        "/admin/v1/members", json={"phone": "13800000003"}, headers=admin_headers
    ).get_json()
    channels = dict(
        db.session.execute(select(MemberConsent.member_id, MemberConsent.channel)).all()
    )
    assert channels == {member_id: "wechat", imported["id"]: "import"}
    # every member holding a phone has a consent no later than the phone
    for member in db.session.scalars(select(Member).where(Member.phone.is_not(None))):
        consent = db.session.scalar(
            select(MemberConsent).where(MemberConsent.member_id == member.id)
        )
        assert consent is not None and consent.policy_version == "1"


def test_the_export_holds_everything_about_the_member(client, admin_headers):
    member_id, code = rich_member(client, admin_headers)
    response = client.get("/mp/v1/me/export", headers=headers_of(member_id))
    assert response.status_code == 200
    data = response.get_json()
    assert data["member"]["phone"] == "13800000001" and data["member"]["name"] == "王女士"
    assert {i["kind"] for i in data["identities"]} == {"wechat_openid", "phone"}
    assert data["consents"][0]["channel"] == "wechat"
    assert data["points"]["balance"] == 50 and data["points"]["ledger"][0]["kind"] == "earn"
    assert data["purchases"][0]["paid_fen"] == 5000
    assert data["till_sales"][0]["sale_id"] == "S1"
    assert [c["code"] for c in data["coupons"]] == [code]
    assert data["clerk_notes"][0]["text"] == "喜欢乌龙"
    assert data["tags"][0]["name"] == "乌龙"


def test_a_member_erases_themselves_and_the_books_still_balance(client, admin_headers):
    member_id, code = rich_member(client, admin_headers)
    headers = headers_of(member_id)
    response = client.delete("/mp/v1/me", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["points_forfeited"] == 50 and body["coupons_voided"] == 1
    assert body["requested_by"] == "member"
    db.session.expire_all()
    member = db.session.get(Member, member_id)
    assert (member.status, member.phone, member.name, member.birthday) == (
        "erased",
        None,
        None,
        None,
    )
    assert db.session.scalar(select(func.count()).select_from(MemberIdentity)) == 0
    assert db.session.scalar(select(func.count()).select_from(ClerkNote)) == 0
    assert db.session.scalar(select(func.count()).select_from(MemberTag)) == 0
    assert db.session.scalar(select(Coupon.state).where(Coupon.code == code)) == "void"
    assert balance_of(member_id) == 0
    forfeit = db.session.scalars(select(PointsEntry).where(PointsEntry.ref_type == "erasure")).one()
    assert forfeit.points == -50
    assert db.session.scalars(select(MemberErasure)).one().member_id == member_id
    assert db.session.scalar(select(func.count()).select_from(MemberConsent)) >= 1  # kept
    # every token of the member stops working
    assert_error(client.get("/mp/v1/me", headers=headers), 401, "INVALID_TOKEN")
    assert_error(client.get("/mp/v1/me", headers=headers_of(member_id)), 401, "INVALID_TOKEN")
    # the audit finds nothing
    assert all(not found for found in run_audit().values()), run_audit()
    runner = client.application.test_cli_runner()
    assert runner.invoke(args=["audit"]).exit_code == 0


def test_hq_erases_a_member_and_the_same_phone_joins_again_as_a_new_member(client, admin_headers):
    member_id, _ = rich_member(client, admin_headers)
    first = client.post(f"/admin/v1/members/{member_id}/erase", headers=admin_headers)
    assert first.status_code == 200 and first.get_json()["requested_by"] == "admin"
    again = client.post(f"/admin/v1/members/{member_id}/erase", headers=admin_headers)
    assert again.get_json()["erased_at"] == first.get_json()["erased_at"]
    shown = client.get(f"/admin/v1/members/{member_id}", headers=admin_headers).get_json()
    assert shown["status"] == "erased" and shown["phone"] is None and shown["identities"] == []
    till = signed_client(client, admin_headers, "SH001")
    rejoined = till.identify(phone="13800000001", register=True, consent=True)
    assert rejoined.status == 200 and rejoined.json["registered"] is True
    assert rejoined.json["member_id"] != member_id
    with unit_of_work():
        wechat_again = create_member(
            source="wechat_miniprogram", identities=[("wechat_openid", "wx1", "openid-1")]
        ).id
    assert wechat_again not in (member_id, rejoined.json["member_id"])
    assert all(not found for found in run_audit().values()), run_audit()


def test_an_erased_member_can_neither_earn_nor_spend_at_the_till(client, admin_headers):
    member_id, _ = rich_member(client, admin_headers)
    till = signed_client(client, admin_headers, "SH001")
    token = present(till, member_id)
    client.post(f"/admin/v1/members/{member_id}/erase", headers=admin_headers)
    held = till.hold(sale_id="S9", presence_token=token, points=1)
    assert held.status in (403, 404, 409, 422)
    response = till.send_events([sale("S10", 1000, member={"member_id": member_id})])
    assert statuses(response) == ["rejected"]
    assert balance_of(member_id) == 0
    assert all(not found for found in run_audit().values()), run_audit()


def test_erasure_releases_a_pending_till_hold_first(client, admin_headers):
    member_id, _ = rich_member(client, admin_headers)
    till = signed_client(client, admin_headers, "SH001")
    held = till.hold(sale_id="S2", presence_token=present(till, member_id), points=30)
    assert held.status == 201 and balance_of(member_id) == 20
    erased = client.post(f"/admin/v1/members/{member_id}/erase", headers=admin_headers)
    assert erased.get_json()["points_forfeited"] == 50
    assert balance_of(member_id) == 0
    assert all(not found for found in run_audit().values()), run_audit()
