"""The SKU catalog (SKU → category) and the segment conditions "bought a SKU / a category
within N days", on till sales with lines.

Today is 2026-11-23 12:00 Shanghai. Catalog: TEA-01 and TEA-02 奶茶, CAKE-07 烘焙; GIFT-1 is
not in the catalog.

| member | till sales (Shanghai day, lines)         | 奶茶 ≤30 | 奶茶 ≤60 | 烘焙 ≤60 |
|--------|------------------------------------------|----------|----------|----------|
| a      | 11-18 TEA-01                             | yes      | yes      | no       |
| b      | 10-14 CAKE-07 (40 days)                  | no       | no       | yes      |
| c      | 10-14 TEA-02 (40 days), 11-21 GIFT-1     | no       | yes      | no       |
| d      | 08-25 TEA-01 + CAKE-07 (90 days)         | no       | no       | no       |
| e      | none                                     | no       | no       | no       |
"""

from __future__ import annotations

import pytest

from app.common.clock import frozen
from app.db import unit_of_work
from app.intel.segments import count_members
from app.members.services import create_member
from tests.intel_support import at
from tests.pos_support import sale, signed_client, statuses

TODAY = at(2026, 11, 23)


def c(field, op, value, **extra):
    return {"field": field, "op": op, "value": value, **extra}


def set_skus(client, headers, items):
    return client.put("/admin/v1/skus", json={"items": items}, headers=headers)


@pytest.fixture
def shoppers(client, admin_headers, store):
    response = set_skus(
        client,
        admin_headers,
        [
            {"sku": "TEA-01", "category": "奶茶", "name": "招牌奶茶"},
            {"sku": " TEA-02 ", "category": "奶茶"},
            {"sku": "CAKE-07", "category": "烘焙"},
        ],
    )
    assert response.status_code == 200, response.get_json()
    with frozen(TODAY):
        with unit_of_work():
            ids = {k: create_member(source="test", phone=None).id for k in "abcde"}
        till = signed_client(client, admin_headers, "SH001")

        def line(sku):
            return {"sku": sku, "qty": 1, "amount_fen": 1000}

        events = [
            ("a", "2026-11-18T10:00:00+08:00", [line("TEA-01")]),
            ("b", "2026-10-14T10:00:00+08:00", [line("CAKE-07")]),
            ("c", "2026-10-14T10:00:00+08:00", [line("TEA-02")]),
            ("c", "2026-11-21T10:00:00+08:00", [line("GIFT-1")]),
            ("d", "2026-08-25T10:00:00+08:00", [line("TEA-01"), line("CAKE-07")]),
        ]
        response = till.send_events(
            [
                sale(
                    f"S{i}",
                    1000 * len(lines),
                    occurred_at=when,
                    lines=lines,
                    member={"member_id": ids[who]},
                )
                for i, (who, when, lines) in enumerate(events)
            ]
        )
    assert statuses(response) == ["accepted"] * len(events)
    return ids


def test_bought_category_within_n_days_counts_the_hand_computed_members(shoppers):
    cases = [
        (c("bought_category", "=", "奶茶", within_days=30), 1),  # a
        (c("bought_category", "=", "奶茶", within_days=60), 2),  # a, c
        (c("bought_category", "=", "烘焙", within_days=30), 0),
        (c("bought_category", "=", "烘焙", within_days=60), 1),  # b
        (c("bought_category", "in", ["奶茶", "烘焙"], within_days=60), 3),  # a, b, c
        (c("bought_category", "in", ["奶茶", "烘焙"], within_days=100), 4),  # and d
        (c("bought_category", "=", "奶茶"), 1),  # default: 30 days
        ({"not": c("bought_category", "=", "奶茶", within_days=60)}, 3),  # b, d, e
        (c("bought_category", "!=", "奶茶", within_days=60), 3),
        (c("bought_category", "=", "无此类", within_days=3650), 0),
        (c("bought_sku", "=", "TEA-01", within_days=30), 1),  # a
        (c("bought_sku", "in", ["TEA-01", "GIFT-1"], within_days=30), 2),  # a, c
        (c("bought_sku", "=", "TEA-01", days=100), 2),  # a, d: "days", the older name
        (
            {
                "all": [
                    c("bought_category", "=", "奶茶", within_days=60),
                    c("bought_sku", "=", "GIFT-1", within_days=7),
                ]
            },
            1,  # c
        ),
    ]
    with frozen(TODAY):
        got = [(rule, count_members(rule)) for rule, _ in cases]
    assert got == [(rule, n) for rule, n in cases]


def test_moving_a_sku_to_another_category_moves_its_past_sales(client, admin_headers, shoppers):
    response = set_skus(client, admin_headers, [{"sku": "TEA-02", "category": "烘焙"}])
    assert response.status_code == 200
    assert [(i["sku"], i["category"]) for i in response.get_json()["items"]] == [("TEA-02", "烘焙")]
    with frozen(TODAY):
        assert count_members(c("bought_category", "=", "奶茶", within_days=60)) == 1  # a
        assert count_members(c("bought_category", "=", "烘焙", within_days=60)) == 2  # b, c
    set_skus(client, admin_headers, [{"sku": "TEA-02", "category": None}])
    with frozen(TODAY):
        assert count_members(c("bought_category", "in", ["奶茶", "烘焙"], within_days=60)) == 2


def test_the_catalog_lists_by_category_and_counts_categories(client, admin_headers, shoppers):
    listed = client.get("/admin/v1/skus?category=奶茶", headers=admin_headers).get_json()
    assert [(i["sku"], i["name"]) for i in listed["items"]] == [
        ("TEA-01", "招牌奶茶"),
        ("TEA-02", None),
    ]
    one = client.get("/admin/v1/skus?sku=CAKE-07", headers=admin_headers).get_json()
    assert [i["category"] for i in one["items"]] == ["烘焙"]
    categories = client.get("/admin/v1/sku-categories", headers=admin_headers).get_json()
    assert categories["items"] == [{"category": "奶茶", "skus": 2}, {"category": "烘焙", "skus": 1}]


@pytest.mark.parametrize(
    "items, code",
    [
        ([{"sku": "X", "category": "a"}, {"sku": " X", "category": "b"}], "DUPLICATE_SKU"),
        ([{"sku": "   ", "category": "a"}], "VALIDATION_ERROR"),
        ([{"sku": "X" * 65, "category": "a"}], "VALIDATION_ERROR"),
        ([{"sku": "X"}], "VALIDATION_ERROR"),  # category is required (null to clear)
        ([], "VALIDATION_ERROR"),
    ],
)
def test_bad_catalog_input_is_a_clear_422_and_writes_nothing(client, admin_headers, items, code):
    response = set_skus(client, admin_headers, items)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["code"] == code
    assert client.get("/admin/v1/skus", headers=admin_headers).get_json()["items"] == []


@pytest.mark.parametrize("extra", [{"within_days": 0}, {"within_days": "7"}, {"days": 4000}])
def test_a_bad_look_back_is_refused(client, admin_headers, extra):
    rule = c("bought_category", "=", "奶茶", **extra)
    response = client.post(
        "/admin/v1/segments", json={"name": "s", "rule": rule}, headers=admin_headers
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "INVALID_RULE"
    assert "rule.within_days" in response.get_json()["error"]["details"]


def test_a_clerk_token_cannot_set_the_catalog(client):
    response = set_skus(client, {"Authorization": "Bearer nope"}, [{"sku": "X", "category": "a"}])
    assert response.status_code == 401
