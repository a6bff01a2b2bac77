"""Inputs schemathesis found answering 500 (`make reliability`): each now a 4xx in the error
contract. Found on PostgreSQL, which refuses what SQLite stores silently."""

from __future__ import annotations

import pytest

from tests.conftest import requires_postgres

HUGE = 8758562884741819392  # beyond PostgreSQL's integer, the type of every path id


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"/admin/v1/members/{HUGE}/points/ledger"),
        ("post", f"/admin/v1/members/{HUGE}/points/adjustments"),
        ("post", f"/admin/v1/tag-groups/{HUGE}/tags"),
        ("post", f"/mp/v1/coupon-templates/{HUGE}/exchange"),
    ],
)
def test_a_path_id_beyond_the_id_range_is_not_found(client, admin_headers, method, path):
    response = getattr(client, method)(path, headers=admin_headers, json={})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "NOT_FOUND"


def test_the_openapi_document_states_the_path_id_bound(client):
    spec = client.get("/openapi.json").get_json()
    (param,) = spec["paths"]["/admin/v1/members/{member_id}/points/ledger"]["parameters"]
    assert param["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}


@requires_postgres
def test_a_nul_character_in_text_is_a_validation_error(client, admin_headers):
    response = client.post(
        "/admin/v1/tag-groups",
        json={"name": "会员\x00", "exclusive": False, "tags": []},
        headers=admin_headers,
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


@requires_postgres
@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/admin/v1/tag-groups/reorder", {"group_ids": [HUGE]}),
        ("/admin/v1/tag-rules", {"skus": ["TEA-01"], "tag_id": HUGE}),
    ],
)
def test_an_id_beyond_its_column_in_a_body_is_a_validation_error(
    client, admin_headers, path, payload
):
    response = client.post(path, json=payload, headers=admin_headers)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


@requires_postgres
def test_an_id_beyond_its_column_in_a_query_is_a_validation_error(client, admin_headers):
    response = client.get(f"/admin/v1/clerk-notes?member_id={HUGE}", headers=admin_headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


@requires_postgres
def test_an_event_the_database_refuses_is_rejected_alone_and_its_neighbours_apply(
    client, admin_headers, store
):
    from tests.pos_support import sale, signed_client, statuses

    till = signed_client(client, admin_headers, "SH001")
    response = till.send_events(
        [
            sale("S1", 1000, member={"member_id": HUGE}),
            sale("S\x00", 1000),
            sale("S2", 1000, member={"phone": "13800000001"}),
        ]
    )
    assert statuses(response) == ["rejected", "rejected", "accepted"]
    assert response.json["results"][0]["error"]["code"] == "VALIDATION_ERROR"


def test_a_null_or_non_object_event_is_rejected_alone(client, admin_headers, store):
    from tests.pos_support import sale, signed_client, statuses

    till = signed_client(client, admin_headers, "SH001")
    response = till.send_events([None, [], "sale", sale("S1", 1000)])
    assert statuses(response) == ["rejected", "rejected", "rejected", "accepted"]
