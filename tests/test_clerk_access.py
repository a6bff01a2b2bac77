"""A clerk reaches a member only through a lookup, for 30 minutes, for their own store."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.clerks.models import ClerkAccessLog
from app.common.clock import advance, frozen
from app.db import unit_of_work
from app.extensions import db
from app.members.codes import issue_member_code
from app.members.models import Member
from app.members.services import create_member
from app.points.purchases import record_purchase
from app.stores.models import Store
from app.tags.catalog import create_group
from tests.test_clerk_auth import clerk_headers, make_clerk
from tests.test_foundation_http import assert_error

PHONE = "13812345678"
OTHER_PHONE = "13900001111"
T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
FULL_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


@pytest.fixture
def scene(client):
    """Two stores with a clerk each, two members, a tag catalog, purchases in both stores."""
    lily, mei = make_clerk("SH001", "lily"), make_clerk("SH002", "mei")
    with unit_of_work():
        alice = create_member(source="test", phone=PHONE, name="王女士")
        bob = create_member(source="test", phone=OTHER_PHONE)
    sh001, sh002 = (
        db.session.scalar(select(Store.id).where(Store.code == c)) for c in ("SH001", "SH002")
    )
    with unit_of_work():
        record_purchase(
            source="pos",
            external_id="s1",
            member_id=alice.id,
            store_id=sh001,
            paid_fen=3200,
            occurred_at=T0 - timedelta(days=3),
        )
        record_purchase(
            source="pos",
            external_id="s2",
            member_id=alice.id,
            store_id=sh002,
            paid_fen=5000,
            occurred_at=T0 - timedelta(days=1),
        )
    gender = create_group("性别", exclusive=True, tag_names=["女", "男"])
    return {
        "lily": clerk_headers(client, "lily"),
        "mei": clerk_headers(client, "mei"),
        "lily_id": lily.id,
        "mei_id": mei.id,
        "alice": alice.id,
        "bob": bob.id,
        "tag": gender.tags[0].id,
    }


def lookup(client, headers, **body):
    return client.post("/clerk/v1/members/lookup", json=body, headers=headers)


def member_calls(client, headers, member_id, tag_id):
    """Every clerk request that names a member id."""
    return [
        client.get(f"/clerk/v1/members/{member_id}", headers=headers),
        client.post(f"/clerk/v1/members/{member_id}/tags", json={"add": [tag_id]}, headers=headers),
        client.post(
            f"/clerk/v1/members/{member_id}/notes", json={"text": "喜欢少糖"}, headers=headers
        ),
    ]


def test_lookup_by_phone_shows_the_clerk_view_with_a_masked_phone(client, scene):
    with frozen(T0):
        response = lookup(client, scene["lily"], phone=PHONE)
    assert response.status_code == 200, response.get_json()
    view = response.get_json()
    assert view["id"] == scene["alice"]
    assert view["phone_masked"] == "138****5678"
    assert view["name"] == "王女士"
    assert view["points_balance"] == 32 + 50
    # only this store's purchases; the last visit anywhere
    assert view["store_purchases"] == {
        "days": 90,
        "count": 1,
        "net_paid_fen": 3200,
        "last_at": (T0 - timedelta(days=3)).isoformat(),
    }
    assert view["last_visit_at"] == (T0 - timedelta(days=1)).isoformat()
    assert view["access_expires_at"] == (T0 + timedelta(minutes=30)).isoformat()
    assert view["tags"] == [] and view["notes"] == []
    assert view["coupons_available"] == 0


def test_the_clerk_view_counts_the_coupons_usable_in_this_store(client, scene):
    from app.coupons.issuance import issue_once
    from app.coupons.templates import create_template

    everywhere = create_template(
        {
            "name": "满30减5",
            "kind": "cash_off",
            "value_fen": 500,
            "valid_days": 7,
            "giftable": False,
        }
    )
    elsewhere = create_template(
        {
            "name": "杭州专享",
            "kind": "cash_off",
            "value_fen": 500,
            "valid_days": 7,
            "giftable": False,
            "store_codes": ["SH002"],
        }
    )
    with unit_of_work():
        issue_once(everywhere.id, scene["alice"], source="admin", issue_key="c1")
        issue_once(everywhere.id, scene["alice"], source="admin", issue_key="c2")
        issue_once(elsewhere.id, scene["alice"], source="admin", issue_key="c3")
    view = lookup(client, scene["lily"], phone=PHONE).get_json()
    assert view["coupons_available"] == 2


def test_lookup_by_member_code_grants_access_too(client, scene):
    code, _ = issue_member_code(scene["bob"])
    assert lookup(client, scene["lily"], member_code=code).get_json()["id"] == scene["bob"]
    assert client.get(f"/clerk/v1/members/{scene['bob']}", headers=scene["lily"]).status_code == 200


def test_lookup_needs_exactly_one_key_and_refuses_unknowns(client, scene):
    assert_error(lookup(client, scene["lily"]), 422, "VALIDATION_ERROR")
    assert_error(
        lookup(client, scene["lily"], phone=PHONE, member_code="HY1"), 422, "VALIDATION_ERROR"
    )
    assert_error(lookup(client, scene["lily"], phone="12345"), 422, "INVALID_PHONE")
    assert_error(lookup(client, scene["lily"], phone="13700000000"), 404, "MEMBER_NOT_FOUND")
    assert_error(
        lookup(client, scene["lily"], member_code="HY" + "0" * 20), 404, "MEMBER_CODE_INVALID"
    )


def test_without_a_lookup_every_member_id_looks_absent(client, scene):
    """By id, by guessing, by paging through ids: the same 404 as for an id that never existed."""
    nonexistent = max(scene["alice"], scene["bob"]) + 5
    baseline = [
        r.get_json() for r in member_calls(client, scene["lily"], nonexistent, scene["tag"])
    ]
    assert all(body["error"]["code"] == "MEMBER_NOT_FOUND" for body in baseline)
    for member_id in range(1, nonexistent + 3):
        for response, expected in zip(
            member_calls(client, scene["lily"], member_id, scene["tag"]), baseline, strict=True
        ):
            assert response.status_code == 404
            assert response.get_json() == expected
    assert db.session.scalar(select(Member.id).where(Member.id == scene["alice"]))


def test_a_lookup_opens_that_member_only_and_only_for_30_minutes(client, scene):
    with frozen(T0):
        lookup(client, scene["lily"], phone=PHONE)
        assert all(
            r.status_code in (200, 201)
            for r in member_calls(client, scene["lily"], scene["alice"], scene["tag"])
        )
        assert all(
            r.status_code == 404
            for r in member_calls(client, scene["lily"], scene["bob"], scene["tag"])
        )
        advance(timedelta(minutes=31))
        assert all(
            r.status_code == 404
            for r in member_calls(client, scene["lily"], scene["alice"], scene["tag"])
        )
        lookup(client, scene["lily"], phone=PHONE)
        assert (
            client.get(f"/clerk/v1/members/{scene['alice']}", headers=scene["lily"]).status_code
            == 200
        )


def test_a_grant_belongs_to_one_clerk_and_one_store(client, scene):
    lookup(client, scene["lily"], phone=PHONE)
    assert all(
        r.status_code == 404
        for r in member_calls(client, scene["mei"], scene["alice"], scene["tag"])
    )
    # a clerk moved to another store keeps nothing from the old one
    from app.stores.models import Clerk

    db.session.get(Clerk, scene["lily_id"]).store_id = db.session.scalar(
        select(Store.id).where(Store.code == "SH002")
    )
    db.session.commit()
    moved = clerk_headers(client, "lily")
    assert client.get(f"/clerk/v1/members/{scene['alice']}", headers=moved).status_code == 404


def test_a_clerk_cannot_name_another_store(client, scene):
    assert_error(lookup(client, scene["lily"], phone=PHONE, store="SH002"), 422, "VALIDATION_ERROR")
    with frozen(T0):
        view = client.post(
            "/clerk/v1/members/lookup",
            json={"phone": PHONE},
            headers={**scene["lily"], "X-Store": "SH002"},
        ).get_json()
    assert view["store_purchases"]["net_paid_fen"] == 3200  # SH001's, from the token


def test_merged_ids_resolve_to_the_survivor_and_need_a_grant_for_it(client, scene):
    db.session.get(Member, scene["bob"]).merged_into_id = scene["alice"]
    db.session.get(Member, scene["bob"]).status = "merged"
    db.session.commit()
    assert client.get(f"/clerk/v1/members/{scene['bob']}", headers=scene["lily"]).status_code == 404
    lookup(client, scene["lily"], phone=PHONE)
    view = client.get(f"/clerk/v1/members/{scene['bob']}", headers=scene["lily"]).get_json()
    assert view["id"] == scene["alice"]


def test_every_request_for_a_member_is_in_the_access_log(client, scene, admin_headers):
    client.get(f"/clerk/v1/members/{scene['alice']}", headers=scene["lily"])
    lookup(client, scene["lily"], phone=PHONE)
    member_calls(client, scene["lily"], scene["alice"], scene["tag"])
    lookup(client, scene["lily"], phone="13700000000")
    log = client.get(
        "/admin/v1/clerk-access-log",
        query_string={"clerk_id": scene["lily_id"]},
        headers=admin_headers,
    ).get_json()["items"]
    assert [(e["action"], e["outcome"], e["member_id"]) for e in reversed(log)] == [
        ("view", "denied", scene["alice"]),
        ("lookup", "granted", scene["alice"]),
        ("view", "ok", scene["alice"]),
        ("tag", "ok", scene["alice"]),
        ("note", "ok", scene["alice"]),
        ("lookup", "not_found", None),
    ]
    assert db.session.scalar(select(ClerkAccessLog.store_id).limit(1)) is not None


def test_lookups_are_rate_limited_per_clerk(client, scene, monkeypatch):
    monkeypatch.setattr("app.clerks.services.LOOKUPS_PER_HOUR", 3)
    for _ in range(3):
        assert lookup(client, scene["lily"], phone=PHONE).status_code == 200
    assert_error(lookup(client, scene["lily"], phone=PHONE), 429, "LOOKUP_RATE_LIMITED")
    assert lookup(client, scene["mei"], phone=PHONE).status_code == 200


def test_notes_are_length_limited_and_recorded_with_clerk_and_store(client, scene, admin_headers):
    lookup(client, scene["lily"], phone=PHONE)
    url = f"/clerk/v1/members/{scene['alice']}/notes"
    assert_error(
        client.post(url, json={"text": "x" * 501}, headers=scene["lily"]), 422, "VALIDATION_ERROR"
    )
    assert_error(
        client.post(url, json={"text": "   "}, headers=scene["lily"]), 422, "VALIDATION_ERROR"
    )
    assert (
        client.post(url, json={"text": "怕针，别推荐项目"}, headers=scene["lily"]).status_code
        == 201
    )
    notes = client.get(
        "/admin/v1/clerk-notes", query_string={"member_id": scene["alice"]}, headers=admin_headers
    ).get_json()["items"]
    assert [(n["text"], n["clerk_id"]) for n in notes] == [("怕针，别推荐项目", scene["lily_id"])]
    view = lookup(client, scene["lily"], phone=PHONE).get_json()
    assert view["notes"][0]["store"] == "SH001" and view["notes"][0]["clerk_name"] == "导购lily"


def test_no_clerk_response_ever_carries_a_full_phone(app, client, scene):
    """Walk every /clerk/ operation in the OpenAPI document and call it with real data."""
    code, _ = issue_member_code(scene["bob"])
    bodies = {
        ("post", "/clerk/v1/login"): {"username": "lily", "password": "counter-pass-1"},
        ("post", "/clerk/v1/members/lookup"): {"phone": PHONE},
        ("post", "/clerk/v1/members/{member_id}/tags"): {"add": [scene["tag"]]},
        ("post", "/clerk/v1/members/{member_id}/notes"): {"text": f"她的新号 {OTHER_PHONE} 记一下"},
    }
    spec = client.get("/openapi.json").get_json()
    operations = [
        (method, path)
        for path, item in spec["paths"].items()
        if path.startswith("/clerk/")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) >= 8
    # a member name that is itself a phone number must not leak either
    db.session.get(Member, scene["alice"]).name = f"+86{PHONE}"
    db.session.commit()
    seen = []
    for extra in ({"member_code": code}, {}):
        lookup(client, scene["lily"], **(extra or {"phone": PHONE}))
        for method, path in sorted(operations, key=lambda op: op[1].endswith("logout")):
            if ("logout" in path) and extra:
                continue
            url = path.replace("{member_id}", str(scene["alice"]))
            response = client.open(
                url, method=method.upper(), headers=scene["lily"], json=bodies.get((method, path))
            )
            assert response.status_code < 400, (path, response.get_json())
            text = response.get_data(as_text=True)
            assert not FULL_PHONE.search(text), (path, text)
            seen.append(path)
    assert set(seen) == {p for _, p in operations}
    assert set(bodies) <= set(operations)
