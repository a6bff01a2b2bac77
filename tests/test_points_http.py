"""HTTP: the member's points and ledger, HQ's ledger view and manual adjustments."""

from datetime import UTC, datetime

from app.common.clock import frozen
from app.db import unit_of_work
from app.points.services import post_entry
from miniprogram_api.auth import issue_member_token
from tests.test_points_core import new_member
from tests.test_points_lots import assert_consistent, earn


def member_headers(member_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_member_token(member_id, 'wechat')}"}


def test_a_member_sees_the_balance_and_when_which_points_expire(client):
    member_id = new_member()
    with frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        earn(member_id, 10, "e1")
    with frozen(datetime(2027, 6, 1, tzinfo=UTC)):
        earn(member_id, 5, "e2")
        with unit_of_work():
            post_entry(member_id, -4, kind="redeem", idempotency_key="r")
    body = client.get("/mp/v1/points", headers=member_headers(member_id)).get_json()
    assert body == {
        "balance": 11,
        "expiring": [
            {"points": 6, "expires_at": "2027-12-31T16:00:00+00:00"},
            {"points": 5, "expires_at": "2028-12-31T16:00:00+00:00"},
        ],
    }
    assert client.get("/mp/v1/points").get_json()["error"]["code"] == "AUTH_REQUIRED"


def test_a_member_pages_through_the_ledger_newest_first(client):
    member_id = new_member("13800000001")
    other = new_member("13800000002")
    for i in range(5):
        earn(member_id, i + 1, f"e{i}")
    earn(other, 100, "other")
    headers = member_headers(member_id)
    first = client.get("/mp/v1/points/ledger?limit=3", headers=headers).get_json()
    assert [e["points"] for e in first["items"]] == [5, 4, 3]
    assert first["items"][0]["balance_after"] == 15 and "actor" not in first["items"][0]
    second = client.get(
        f"/mp/v1/points/ledger?limit=3&cursor={first['next_cursor']}", headers=headers
    ).get_json()
    assert [e["points"] for e in second["items"]] == [2, 1] and second["next_cursor"] is None
    bad = client.get("/mp/v1/points/ledger?cursor=%%%", headers=headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "INVALID_CURSOR"


def test_an_admin_adjustment_needs_a_reason_and_records_the_admin(client, admin_headers):
    member_id = new_member()
    url = f"/admin/v1/members/{member_id}/points/adjustments"
    missing = client.post(url, json={"points": 50}, headers=admin_headers)
    assert missing.status_code == 422 and "reason" in missing.get_json()["error"]["details"]
    blank = client.post(url, json={"points": 50, "reason": "  "}, headers=admin_headers)
    assert blank.get_json()["error"]["code"] == "REASON_REQUIRED"
    zero = client.post(url, json={"points": 0, "reason": "x"}, headers=admin_headers)
    assert zero.get_json()["error"]["code"] == "INVALID_POINTS"

    done = client.post(url, json={"points": 50, "reason": "迁移补录"}, headers=admin_headers)
    assert done.status_code == 201
    entry = done.get_json()
    assert (entry["kind"], entry["points"], entry["actor"], entry["reason"]) == (
        "adjust",
        50,
        "test-admin",
        "迁移补录",
    )
    too_much = client.post(url, json={"points": -51, "reason": "fix"}, headers=admin_headers)
    assert too_much.status_code == 409
    assert too_much.get_json()["error"]["code"] == "INSUFFICIENT_POINTS"
    assert client.post(url, json={"points": 5, "reason": "x"}).status_code == 401
    unknown = client.post(
        "/admin/v1/members/999999/points/adjustments",
        json={"points": 5, "reason": "x"},
        headers=admin_headers,
    )
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "MEMBER_NOT_FOUND"
    assert_consistent(member_id)


def test_an_adjustment_repeated_with_its_idempotency_key_applies_once(client, admin_headers):
    member_id = new_member()
    url = f"/admin/v1/members/{member_id}/points/adjustments"
    headers = {**admin_headers, "Idempotency-Key": "ticket-4711"}
    first = client.post(url, json={"points": 20, "reason": "goodwill"}, headers=headers)
    again = client.post(url, json={"points": 20, "reason": "goodwill"}, headers=headers)
    assert first.get_json()["id"] == again.get_json()["id"]
    other = client.post(url, json={"points": 30, "reason": "goodwill"}, headers=headers)
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    ledger = client.get(f"/admin/v1/members/{member_id}/points/ledger", headers=admin_headers)
    body = ledger.get_json()
    assert body["balance"] == 20 and len(body["items"]) == 1
    assert body["items"][0]["idempotency_key"] == "adjust:ticket-4711"
    missing = client.get("/admin/v1/members/999999/points/ledger", headers=admin_headers)
    assert missing.status_code == 404


def test_the_points_endpoints_are_documented(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in (
        "/mp/v1/points",
        "/mp/v1/points/ledger",
        "/admin/v1/members/{member_id}/points/ledger",
        "/admin/v1/members/{member_id}/points/adjustments",
        "/admin/v1/points/multiplier-rules",
    ):
        assert path in paths, path
    adjust = paths["/admin/v1/members/{member_id}/points/adjustments"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in adjust["parameters"])
