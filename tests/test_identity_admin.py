"""Admin member endpoints: import by phone, lookup by phone or identity, detail."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.members.binding import bind_phone
from app.points.models import PointsEntry


def import_member(client, headers, **body):
    return client.post("/admin/v1/members", json=body, headers=headers)


def test_import_by_phone_with_points_writes_an_import_ledger_entry(client, admin_headers):
    response = import_member(
        client,
        admin_headers,
        phone="+8613812345678",
        name="王芳",
        birthday="1990-05-08",
        points=320,
    )
    assert response.status_code == 201, response.get_json()
    member = response.get_json()
    assert member["phone"] == "13812345678" and member["points_balance"] == 320
    assert member["identities"] == [{"kind": "phone", "app": "", "external_id": "13812345678"}]
    assert member["merged_into"] is None and member["status"] == "active"
    entry = db.session.scalars(select(PointsEntry)).one()
    assert (entry.kind, entry.points, entry.actor) == ("import", 320, "test-admin")


def test_importing_a_known_phone_or_a_bad_phone_is_refused(client, admin_headers):
    assert import_member(client, admin_headers, phone="13812345678").status_code == 201
    again = import_member(client, admin_headers, phone="+8613812345678")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "MEMBER_EXISTS"
    bad = import_member(client, admin_headers, phone="12345")
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "INVALID_PHONE"


def test_lookup_by_phone_and_by_identity(client, admin_headers):
    member_id = import_member(client, admin_headers, phone="13812345678").get_json()["id"]
    by_phone = client.get("/admin/v1/members?phone=%2B8613812345678", headers=admin_headers)
    assert [m["id"] for m in by_phone.get_json()["items"]] == [member_id]
    by_identity = client.get(
        "/admin/v1/members?identity_kind=phone&external_id=13812345678", headers=admin_headers
    )
    assert [m["id"] for m in by_identity.get_json()["items"]] == [member_id]
    none = client.get("/admin/v1/members?phone=13900000000", headers=admin_headers)
    assert none.get_json() == {"items": []}
    missing = client.get("/admin/v1/members", headers=admin_headers)
    assert missing.status_code == 422
    assert missing.get_json()["error"]["code"] == "LOOKUP_CRITERIA_REQUIRED"
    bad_kind = client.get("/admin/v1/members?identity_kind=qq&external_id=1", headers=admin_headers)
    assert bad_kind.status_code == 422


def test_a_merged_away_member_answers_with_merged_into(client, admin_headers):
    from app.db import unit_of_work
    from app.members.services import create_member

    holder = import_member(client, admin_headers, phone="13812345678", points=5).get_json()["id"]
    with unit_of_work():
        payer = create_member(
            source="wechat_pay", identities=[("wechat_openid", "wxapp", "oADMIN")]
        ).id
    bind_phone(payer, "13812345678", channel="wechat")
    detail = client.get(f"/admin/v1/members/{payer}", headers=admin_headers).get_json()
    assert detail["merged_into"] == holder and detail["status"] == "merged"
    lookup = client.get(
        "/admin/v1/members?identity_kind=wechat_openid&external_id=oADMIN", headers=admin_headers
    )
    assert [m["id"] for m in lookup.get_json()["items"]] == [holder]


def test_member_endpoints_need_an_admin_token_and_unknown_ids_are_404(client, admin_headers):
    assert client.get("/admin/v1/members/1").status_code == 401
    assert client.post("/admin/v1/members", json={"phone": "13812345678"}).status_code == 401
    response = client.get("/admin/v1/members/999", headers=admin_headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "MEMBER_NOT_FOUND"
