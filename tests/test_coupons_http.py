"""The coupon story over HTTP: HQ issues, a member gifts, a friend claims and redeems at a signed
till, the report counts it; and a member exchanges points for a coupon and redeems it."""

from __future__ import annotations

import pytest

from app.coupons import services
from app.stores.services import get_store_by_code
from miniprogram_api.auth import issue_member_token
from tests.pos_support import present, sale, signed_client, statuses
from tests.test_coupons_state_machine import _clock, new_member  # noqa: F401
from tests.test_foundation_http import assert_error


def bearer(member_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_member_token(member_id, 'wechat')}"}


def redeem_at_till(
    client, admin_headers, code: str, member_id: int, store_code: str, sale_id: str
) -> int:
    """A signed till holds the coupon for a 40-yuan sale, then the sale event captures it."""
    till = signed_client(client, admin_headers, store_code)
    held = till.hold(
        sale_id=sale_id, presence_token=present(till, member_id), coupons=[code], total_fen=4000
    )
    assert held.status == 201, held.json
    discount = held.json["discount_fen"]
    result = till.send_events(
        [
            sale(
                sale_id,
                4000 - discount,
                total_fen=4000,
                redemption_id=held.json["id"],
                member={"member_id": member_id},
            )
        ]
    )
    assert statuses(result) == ["accepted"], result.json
    return discount


@pytest.fixture
def template(client, admin_headers, store) -> dict:
    response = client.post(
        "/admin/v1/coupon-templates",
        json={
            "name": "好友心意券 满30减8",
            "kind": "cash_off",
            "value_fen": 800,
            "threshold_fen": 3000,
            "valid_days": 7,
            "giftable": True,
            "points_price": 100,
        },
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_issue_gift_claim_redeem_and_the_report_counts_it(client, admin_headers, template):
    giver, friend = new_member("13800000001"), new_member("13800000002")
    issued = client.post(
        f"/admin/v1/coupon-templates/{template['id']}/issue",
        json={"member_ids": [giver]},
        headers=admin_headers,
    )
    assert issued.status_code == 201, issued.get_json()
    code = issued.get_json()["items"][0]["code"]

    mine = client.get("/mp/v1/coupons", headers=bearer(giver)).get_json()["items"]
    assert [(c["code"], c["state"], c["name"]) for c in mine] == [
        (code, "available", "好友心意券 满30减8")
    ]
    assert mine[0]["template_id"] == template["id"] and mine[0]["expires_at"].endswith("+00:00")

    gift = client.post(f"/mp/v1/coupons/{code}/gift", headers=bearer(giver))
    assert gift.status_code == 201, gift.get_json()
    token = gift.get_json()["gift_token"]
    listed = client.get("/mp/v1/coupons?state=gifting", headers=bearer(giver)).get_json()
    assert listed["items"][0]["gift_token"] == token

    preview = client.get(f"/mp/v1/gifts/{token}", headers=bearer(friend)).get_json()
    assert preview["state"] == "pending" and preview["coupon"]["value_fen"] == 800
    assert "code" not in preview["coupon"] and "owner_id" not in preview["coupon"]
    assert_error(client.post(f"/mp/v1/gifts/{token}/claim", headers=bearer(giver)), 409,
                 "GIFT_OWN_CLAIM")  # fmt: skip
    claimed = client.post(f"/mp/v1/gifts/{token}/claim", headers=bearer(friend))
    assert claimed.status_code == 200, claimed.get_json()
    assert claimed.get_json()["received_as_gift"] is True
    preview = client.get(f"/mp/v1/gifts/{token}", headers=bearer(giver)).get_json()
    assert preview["state"] == "claimed"
    assert client.get("/mp/v1/coupons", headers=bearer(giver)).get_json()["items"] == []
    theirs = client.get("/mp/v1/coupons", headers=bearer(friend)).get_json()["items"]
    assert [c["code"] for c in theirs] == [code]

    assert redeem_at_till(client, admin_headers, code, friend, "SH001", "sale-1") == 800
    assert (
        client.get("/mp/v1/coupons", headers=bearer(friend)).get_json()["items"][0]["state"]
        == "redeemed"
    )

    report = client.get(
        f"/admin/v1/coupon-templates/{template['id']}/report", headers=admin_headers
    ).get_json()
    assert {k: report[k] for k in ("issued", "gifted", "claimed", "redeemed", "expired")} == {
        "issued": 1,
        "gifted": 1,
        "claimed": 1,
        "redeemed": 1,
        "expired": 0,
    }
    assert report["redemption_rate"] == 1.0
    assert (report["redeemed_offline"], report["redeemed_online"]) == (1, 0)
    assert [(s["store_code"], s["redeemed"]) for s in report["by_store"]] == [("SH001", 1)]

    history = client.get(f"/admin/v1/coupons/{code}", headers=admin_headers).get_json()
    assert [e["kind"] for e in history["events"]] == [
        "issued",
        "gift_created",
        "gift_claimed",
        "held",
        "redeemed",
    ]
    assert history["events"][2]["channel"] == "miniprogram"
    assert history["events"][-1]["store_id"] == get_store_by_code("SH001").id


def test_exchange_points_for_a_coupon_then_redeem_it(client, admin_headers, template):
    member = new_member("13800000001", points=250)
    response = client.post(
        f"/mp/v1/coupon-templates/{template['id']}/exchange",
        json={"request_id": "tap-1"},
        headers=bearer(member),
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["points_spent"], body["points_balance"]) == (100, 150)
    again = client.post(
        f"/mp/v1/coupon-templates/{template['id']}/exchange",
        json={"request_id": "tap-1"},
        headers=bearer(member),
    ).get_json()
    assert again["coupon"]["code"] == body["coupon"]["code"] and again["points_balance"] == 150
    assert (
        redeem_at_till(client, admin_headers, body["coupon"]["code"], member, "SH001", "sale-2")
        == 800
    )
    poor = new_member("13800000002", points=99)
    assert_error(
        client.post(f"/mp/v1/coupon-templates/{template['id']}/exchange", headers=bearer(poor)),
        409,
        "INSUFFICIENT_POINTS",
    )


def test_the_giver_cancels_a_gift_over_http(client, admin_headers, template):
    giver, friend = new_member("13800000001"), new_member("13800000002")
    code = services.issue_to_members(template["id"], [giver], admin_name="t")[0][0].code
    token = client.post(
        f"/mp/v1/coupons/{code}/gift", json={"expires_in_hours": 2}, headers=bearer(giver)
    ).get_json()["gift_token"]
    assert_error(client.delete(f"/mp/v1/gifts/{token}", headers=bearer(friend)), 403,
                 "GIFT_NOT_YOURS")  # fmt: skip
    cancelled = client.delete(f"/mp/v1/gifts/{token}", headers=bearer(giver))
    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "available"
    assert_error(client.post(f"/mp/v1/gifts/{token}/claim", headers=bearer(friend)), 409,
                 "GIFT_CANCELLED")  # fmt: skip


def test_coupon_endpoints_need_a_member_or_admin_token(client, template):
    assert_error(client.get("/mp/v1/coupons"), 401, "AUTH_REQUIRED")
    assert_error(client.post("/mp/v1/gifts/x/claim"), 401, "AUTH_REQUIRED")
    assert_error(client.get("/admin/v1/coupon-templates"), 401, "AUTH_REQUIRED")


def test_templates_are_validated_per_kind_and_name_the_fields(client, admin_headers):
    def create(**fields):
        body = {"name": "t", "valid_days": 7, "giftable": False, **fields}
        return client.post("/admin/v1/coupon-templates", json=body, headers=admin_headers)

    assert set(assert_error(create(kind="cash_off"), 422, "VALIDATION_ERROR")["details"]) == {
        "value_fen"
    }
    assert set(
        assert_error(create(kind="discount", percent_off=100), 422, "VALIDATION_ERROR")["details"]
    ) == {"percent_off"}
    error = assert_error(create(kind="gift", gift_sku="X", value_fen=5), 422, "VALIDATION_ERROR")
    assert set(error["details"]) == {"value_fen"}
    error = assert_error(
        client.post(
            "/admin/v1/coupon-templates",
            json={"name": "t", "kind": "cash_off", "value_fen": 1},
            headers=admin_headers,
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert set(error["details"]) == {"valid_days"}
    naive = create(kind="cash_off", value_fen=1, valid_until="2026-07-01T00:00:00")
    assert set(assert_error(naive, 422, "VALIDATION_ERROR")["details"]) == {"valid_until"}
    assert_error(create(kind="cash_off", value_fen=1, store_codes=["NOPE"]), 404,
                 "STORE_NOT_FOUND")  # fmt: skip


def test_templates_are_listed_paused_resumed_and_limited_to_stores(client, admin_headers, store):
    created = client.post(
        "/admin/v1/coupon-templates",
        json={
            "name": "会员日 85折",
            "kind": "discount",
            "percent_off": 15,
            "cap_fen": 2000,
            "valid_days": 10,
            "giftable": True,
            "store_codes": ["SH001"],
            "total_stock": 100,
            "per_member_limit": 2,
        },
        headers=admin_headers,
    ).get_json()
    assert created["store_codes"] == ["SH001"] and created["status"] == "active"
    paused = client.post(
        f"/admin/v1/coupon-templates/{created['id']}/pause", headers=admin_headers
    ).get_json()
    assert paused["status"] == "paused"
    assert_error(
        client.post(
            f"/admin/v1/coupon-templates/{created['id']}/issue",
            json={"member_ids": [new_member()]},
            headers=admin_headers,
        ),
        409,
        "TEMPLATE_PAUSED",
    )
    client.post(f"/admin/v1/coupon-templates/{created['id']}/resume", headers=admin_headers)
    listed = client.get("/admin/v1/coupon-templates", headers=admin_headers).get_json()
    assert [(t["id"], t["status"]) for t in listed["items"]] == [(created["id"], "active")]
    assert_error(client.get("/admin/v1/coupon-templates/999", headers=admin_headers), 404,
                 "TEMPLATE_NOT_FOUND")  # fmt: skip


def test_the_coupon_endpoints_and_their_error_codes_are_in_the_openapi_document(client):
    spec = client.get("/openapi.json").get_json()
    for path in (
        "/mp/v1/coupons",
        "/mp/v1/coupons/{code}/gift",
        "/mp/v1/gifts/{gift_token}/claim",
        "/mp/v1/gifts/{gift_token}",
        "/mp/v1/coupon-templates/{template_id}/exchange",
        "/admin/v1/coupon-templates",
        "/admin/v1/coupon-templates/{template_id}/issue",
        "/admin/v1/coupon-templates/{template_id}/report",
    ):
        assert path in spec["paths"], path
    tags = {tag["name"]: tag["description"] for tag in spec["tags"]}
    assert "GIFT_ALREADY_CLAIMED" in tags["mp_coupons"]
    assert "OUT_OF_STOCK" in tags["admin_coupons"]
