"""The tag catalog HQ manages and clerks tap."""

from tests.test_clerk_auth import clerk_headers, make_clerk
from tests.test_foundation_http import assert_error


def create_group(client, headers, name, exclusive, tags, **extra):
    return client.post(
        "/admin/v1/tag-groups",
        json={"name": name, "exclusive": exclusive, "tags": tags, **extra},
        headers=headers,
    )


def test_creating_a_group_answers_as_the_contract_says(client, admin_headers):
    response = create_group(client, admin_headers, "性别", True, ["女", "男"])
    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "性别" and body["exclusive"] is True
    assert [t["name"] for t in body["tags"]] == ["女", "男"]
    assert all(isinstance(t["id"], int) and t["kind"] == "static" for t in body["tags"])
    listed = client.get("/admin/v1/tag-groups", headers=admin_headers).get_json()
    assert listed["items"] == [body] and listed["next_cursor"] is None


def test_group_names_are_unique_and_tag_names_unique_in_a_group(client, admin_headers):
    create_group(client, admin_headers, "口味", False, ["奶茶"])
    assert_error(create_group(client, admin_headers, "口味", False, []), 409, "TAG_GROUP_EXISTS")
    assert_error(
        create_group(client, admin_headers, "甜度", True, ["少糖", "少糖"]),
        422,
        "DUPLICATE_TAG_NAME",
    )
    assert_error(
        create_group(client, admin_headers, "体型", True, [], kind="odd"), 422, "VALIDATION_ERROR"
    )
    assert_error(
        client.post("/admin/v1/tag-groups", json={"name": "x"}, headers=admin_headers),
        422,
        "VALIDATION_ERROR",
    )


def test_tag_groups_need_an_admin_token(client):
    assert_error(client.get("/admin/v1/tag-groups"), 401, "AUTH_REQUIRED")


def test_clerks_see_live_groups_and_tags_in_the_order_hq_set(client, admin_headers):
    style = create_group(client, admin_headers, "风格", False, ["简约", "甜美", "通勤"]).get_json()
    gender = create_group(client, admin_headers, "性别", True, ["女", "男"]).get_json()
    old = create_group(client, admin_headers, "旧分组", False, ["x"]).get_json()
    added = client.post(
        f"/admin/v1/tag-groups/{style['id']}/tags",
        json={"name": "约会", "kind": "dynamic"},
        headers=admin_headers,
    )
    assert added.status_code == 201 and added.get_json()["kind"] == "dynamic"
    ids = {t["name"]: t["id"] for t in style["tags"]}
    client.post(f"/admin/v1/tags/{ids['甜美']}/archive", headers=admin_headers)
    client.post(f"/admin/v1/tag-groups/{old['id']}/archive", headers=admin_headers)
    reordered = client.post(
        f"/admin/v1/tag-groups/{style['id']}/tags/reorder",
        json={"tag_ids": [ids["通勤"]]},
        headers=admin_headers,
    )
    assert [t["name"] for t in reordered.get_json()["tags"]] == ["通勤", "简约", "甜美", "约会"]
    client.post(
        "/admin/v1/tag-groups/reorder", json={"group_ids": [gender["id"]]}, headers=admin_headers
    )

    make_clerk()
    catalog = client.get("/clerk/v1/tag-groups", headers=clerk_headers(client)).get_json()
    assert [(g["name"], [t["name"] for t in g["tags"]]) for g in catalog["items"]] == [
        ("性别", ["女", "男"]),
        ("风格", ["通勤", "简约", "约会"]),
    ]
    everything = client.get("/admin/v1/tag-groups", headers=admin_headers).get_json()["items"]
    assert {g["name"]: g["archived"] for g in everything} == {
        "风格": False,
        "性别": False,
        "旧分组": True,
    }


def test_reordering_refuses_foreign_and_unknown_ids(client, admin_headers):
    a = create_group(client, admin_headers, "A", False, ["a1"]).get_json()
    b = create_group(client, admin_headers, "B", False, ["b1"]).get_json()
    assert_error(
        client.post(
            f"/admin/v1/tag-groups/{a['id']}/tags/reorder",
            json={"tag_ids": [b["tags"][0]["id"]]},
            headers=admin_headers,
        ),
        422,
        "TAG_NOT_IN_GROUP",
    )
    assert_error(
        client.post(
            "/admin/v1/tag-groups/reorder", json={"group_ids": [999]}, headers=admin_headers
        ),
        404,
        "TAG_GROUP_NOT_FOUND",
    )


def test_the_demo_seed_brings_a_tag_catalog_once(app):
    from app.demo.brand import seed_demo_brand
    from app.tags.catalog import active_catalog

    seed_demo_brand()
    names = [g.name for g in active_catalog()]
    assert "性别" in names and "口味偏好" in names
    lines = seed_demo_brand()
    assert any("tag catalog exists" in line for line in lines)
    assert [g.name for g in active_catalog()] == names
