"""The admin API gaps HQ had: read/update/disable of stores, terminals, clerks, tag groups and
coupon templates; a member's coupons, gifts and tag history; member search; bulk issue by id;
the mini-program points mall."""

import pytest

from app.coupons import services as coupons
from app.db import unit_of_work
from app.tags import catalog
from app.tags.services import Actor, change_member_tags
from miniprogram_api.auth import issue_member_token
from tests.console_scene import PASSWORD, build_scene
from tests.test_foundation_http import assert_error


@pytest.fixture
def scene():
    return build_scene()


def test_stores_are_read_renamed_disabled_and_enabled(client, admin_headers, scene):
    got = client.get("/admin/v1/stores/SH001", headers=admin_headers).get_json()
    assert got["code"] == "SH001" and got["status"] == "active"
    renamed = client.patch(
        "/admin/v1/stores/SH001", json={"name": "静安旗舰店"}, headers=admin_headers
    )
    assert renamed.get_json()["name"] == "静安旗舰店" and renamed.get_json()["city"] == "上海"
    disabled = client.post("/admin/v1/stores/SH001/disable", headers=admin_headers).get_json()
    assert disabled["status"] == "disabled"
    terminal = client.get(f"/admin/v1/terminals/{scene.terminals['SH001']}", headers=admin_headers)
    assert terminal.get_json()["status"] == "revoked"  # a disabled store's tills stop
    assert (
        client.post("/admin/v1/stores/SH001/enable", headers=admin_headers).get_json()["status"]
        == "active"
    )
    assert_error(client.get("/admin/v1/stores/NOPE", headers=admin_headers), 404, "STORE_NOT_FOUND")
    assert_error(
        client.patch("/admin/v1/stores/SH001", json={"name": ""}, headers=admin_headers),
        422,
        "VALIDATION_ERROR",
    )


def test_terminals_are_listed_read_and_renamed(client, admin_headers, scene):
    listed = client.get("/admin/v1/terminals?store=BJ001", headers=admin_headers).get_json()
    assert [t["terminal_id"] for t in listed["items"]] == [scene.terminals["BJ001"]]
    assert listed["items"][0]["status"] == "pending" and "secret" not in str(listed)
    per_store = client.get("/admin/v1/stores/BJ001/terminals", headers=admin_headers).get_json()
    assert per_store["items"] == listed["items"]
    tid = scene.terminals["BJ001"]
    renamed = client.patch(
        f"/admin/v1/terminals/{tid}", json={"name": "2号台"}, headers=admin_headers
    )
    assert renamed.get_json()["name"] == "2号台"
    assert_error(
        client.get("/admin/v1/terminals/TNOPE", headers=admin_headers), 404, "TERMINAL_NOT_FOUND"
    )


def test_clerks_are_listed_read_updated_disabled_and_enabled(client, admin_headers, scene):
    clerk_id = scene.clerks["SH001"]
    listed = client.get("/admin/v1/clerks?store=SH001", headers=admin_headers).get_json()
    assert [c["id"] for c in listed["items"]] == [clerk_id]
    login = {"username": "clerksh001", "password": PASSWORD}
    token = client.post("/clerk/v1/login", json=login).get_json()["token"]
    clerk_headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/clerk/v1/tag-groups", headers=clerk_headers).status_code == 200
    disabled = client.post(f"/admin/v1/clerks/{clerk_id}/disable", headers=admin_headers)
    assert disabled.get_json()["status"] == "disabled"
    assert_error(client.get("/clerk/v1/tag-groups", headers=clerk_headers), 401, "INVALID_TOKEN")
    assert_error(client.post("/clerk/v1/login", json=login), 403, "CLERK_DISABLED")
    client.post(f"/admin/v1/clerks/{clerk_id}/enable", headers=admin_headers)
    moved = client.patch(
        f"/admin/v1/clerks/{clerk_id}",
        json={"name": "小王", "store": "BJ001"},
        headers=admin_headers,
    ).get_json()
    assert (moved["name"], moved["store"], moved["status"]) == ("小王", "BJ001", "active")
    assert client.get(f"/admin/v1/clerks/{clerk_id}", headers=admin_headers).get_json() == moved


def test_tag_groups_are_read_and_renamed(client, admin_headers, scene):
    group = catalog.create_group("口味", exclusive=False, tag_names=["少糖", "无糖"])
    got = client.get(f"/admin/v1/tag-groups/{group.id}", headers=admin_headers).get_json()
    assert [t["name"] for t in got["tags"]] == ["少糖", "无糖"]
    renamed = client.patch(
        f"/admin/v1/tag-groups/{group.id}", json={"name": "甜度"}, headers=admin_headers
    )
    assert renamed.get_json()["name"] == "甜度"
    catalog.create_group("场景", exclusive=True, tag_names=[])
    assert_error(
        client.patch(
            f"/admin/v1/tag-groups/{group.id}", json={"name": "场景"}, headers=admin_headers
        ),
        409,
        "TAG_GROUP_EXISTS",
    )
    tag_id = got["tags"][0]["id"]
    assert (
        client.patch(
            f"/admin/v1/tags/{tag_id}", json={"name": "三分糖"}, headers=admin_headers
        ).get_json()["name"]
        == "三分糖"
    )


def new_template(client, headers, **fields):
    body = {
        "name": "满30减5",
        "kind": "cash_off",
        "value_fen": 500,
        "threshold_fen": 3000,
        "valid_days": 30,
        "points_price": 50,
        **fields,
    }
    response = client.post("/admin/v1/coupon-templates", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_template_terms_are_editable_until_a_coupon_is_issued(client, admin_headers, scene):
    template = new_template(client, admin_headers)
    url = f"/admin/v1/coupon-templates/{template['id']}"
    edited = client.patch(url, json={"value_fen": 600, "name": "满30减6"}, headers=admin_headers)
    assert (edited.get_json()["value_fen"], edited.get_json()["name"]) == (600, "满30减6")
    coupons.issue_to_members(template["id"], [scene.members["SH001"]], admin_name="t")
    locked = client.patch(url, json={"value_fen": 900, "valid_days": 5}, headers=admin_headers)
    assert_error(locked, 409, "TEMPLATE_TERMS_LOCKED")
    assert locked.get_json()["error"]["details"]["fields"] == ["valid_days", "value_fen"]
    fine = client.patch(
        url, json={"name": "新名", "total_stock": 10, "points_price": 80}, headers=admin_headers
    ).get_json()
    assert (fine["name"], fine["total_stock"], fine["points_price"], fine["value_fen"]) == (
        "新名",
        10,
        80,
        600,
    )
    assert_error(
        client.patch(url, json={"total_stock": 0}, headers=admin_headers), 422, "VALIDATION_ERROR"
    )
    # the same value is not a change
    assert client.patch(url, json={"value_fen": 600}, headers=admin_headers).status_code == 200


def test_bulk_issue_reports_each_id_instead_of_failing_whole(client, admin_headers, scene):
    template = new_template(client, admin_headers, per_member_limit=1)
    a, b = scene.members["SH001"], scene.members["BJ001"]
    response = client.post(
        f"/admin/v1/coupon-templates/{template['id']}/issue",
        json={"member_ids": [a, 999999, b, a]},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    results = response.get_json()["results"]
    assert [(r["member_id"], r["status"], r["code"]) for r in results] == [
        (a, "issued", None),
        (999999, "skipped", "MEMBER_NOT_FOUND"),
        (b, "issued", None),
        (a, "skipped", "COUPON_LIMIT_REACHED"),
    ]
    assert results[0]["coupon_code"] and results[1]["coupon_code"] is None


def test_a_members_coupons_gifts_and_tag_history(client, admin_headers, scene):
    a, b = scene.members["SH001"], scene.members["BJ001"]
    template = new_template(client, admin_headers, giftable=True)
    code = coupons.issue_to_members(template["id"], [a], admin_name="t")[0][0].code
    gift = client.post(
        f"/mp/v1/coupons/{code}/gift",
        headers={"Authorization": f"Bearer {issue_member_token(a, 'wechat')}"},
    )
    claim = client.post(
        f"/mp/v1/gifts/{gift.get_json()['gift_token']}/claim",
        headers={"Authorization": f"Bearer {issue_member_token(b, 'wechat')}"},
    )
    assert claim.status_code == 200, claim.get_json()
    mine = client.get(f"/admin/v1/members/{b}/coupons", headers=admin_headers).get_json()
    assert [(c["code"], c["state"], c["received_as_gift"]) for c in mine["items"]] == [
        (code, "available", True)
    ]
    assert (
        client.get(f"/admin/v1/members/{a}/coupons", headers=admin_headers).get_json()["items"]
        == []
    )
    for member in (a, b):
        gifts = client.get(f"/admin/v1/members/{member}/gifts", headers=admin_headers).get_json()
        assert [
            (g["coupon_code"], g["giver_id"], g["claimed_by_id"], g["state"])
            for g in gifts["items"]
        ] == [(code, a, b, "claimed")]
    group = catalog.create_group("偏好", exclusive=False, tag_names=["奶茶"])
    with unit_of_work():
        change_member_tags(
            a,
            add=[group.tags[0].id],
            remove=[],
            actor=Actor("clerk", scene.clerks["SH001"], scene.stores["SH001"]),
        )
    history = client.get(f"/admin/v1/members/{a}/tag-history", headers=admin_headers).get_json()
    assert [(e["action"], e["source"]) for e in history["items"]] == [("added", "clerk")]
    assert_error(
        client.get("/admin/v1/members/999999/coupons", headers=admin_headers),
        404,
        "MEMBER_NOT_FOUND",
    )


def ids(response):
    assert response.status_code == 200, response.get_json()
    return sorted(m["id"] for m in response.get_json()["items"])


def test_member_search_by_partial_phone_tag_store_and_join_date(client, admin_headers, scene):
    m = scene.members
    search = "/admin/v1/members/search"
    assert ids(client.get(f"{search}?phone_contains=0001", headers=admin_headers)) == [m["BJ001"]]
    assert ids(client.get(f"{search}?phone_contains=13800000", headers=admin_headers)) == sorted(
        m.values()
    )
    assert ids(client.get(f"{search}?store=BJ002", headers=admin_headers)) == [m["BJ002"]]
    group = catalog.create_group("会员偏好", exclusive=False, tag_names=["咖啡"])
    tag_id = group.tags[0].id
    with unit_of_work():
        change_member_tags(m["SH001"], add=[tag_id], remove=[], actor=Actor("clerk"))
    assert ids(client.get(f"{search}?tag_id={tag_id}", headers=admin_headers)) == [m["SH001"]]
    assert ids(
        client.get(f"{search}?joined_from=2000-01-01&joined_to=2999-12-31", headers=admin_headers)
    ) == sorted(m.values())
    assert ids(client.get(f"{search}?joined_to=2000-01-01", headers=admin_headers)) == []
    page = client.get(f"{search}?limit=2", headers=admin_headers).get_json()
    rest = client.get(f"{search}?limit=2&cursor={page['next_cursor']}", headers=admin_headers)
    assert len(page["items"]) == 2 and len(rest.get_json()["items"]) == 1
    assert_error(client.get(f"{search}?shoe_size=42", headers=admin_headers), 422, "UNKNOWN_FILTER")
    assert_error(
        client.get(f"{search}?phone_contains=12", headers=admin_headers),
        422,
        "INVALID_PHONE_FRAGMENT",
    )
    assert_error(
        client.get(f"{search}?joined_from=yesterday", headers=admin_headers),
        422,
        "VALIDATION_ERROR",
    )


def test_member_search_is_scoped_and_partial_phone_is_for_hq_roles(client, scene):
    search = "/admin/v1/members/search"
    region = scene.tokens["region_manager"]
    assert ids(client.get(search, headers=region)) == sorted(
        [scene.members["BJ001"], scene.members["BJ002"]]
    )
    assert_error(client.get(f"{search}?store=SH001", headers=region), 404, "STORE_NOT_FOUND")
    assert_error(
        client.get(f"{search}?phone_contains=0000", headers=region), 403, "ROLE_NOT_ALLOWED"
    )
    analyst = client.get(f"{search}?phone_contains=0000", headers=scene.tokens["hq_analyst"])
    assert analyst.status_code == 200
    assert all("****" in m["phone"] for m in analyst.get_json()["items"])
    assert not any(p in analyst.get_data(as_text=True) for p in scene.phones.values())


def test_an_added_search_filter_is_accepted(client, admin_headers, scene):
    from app.members.models import Member
    from app.members.search import _FILTERS, register_member_filter

    register_member_filter("source", lambda stmt, v: stmt.where(Member.source == v), "test")
    try:
        assert ids(client.get("/admin/v1/members/search?source=pos", headers=admin_headers)) == (
            sorted(scene.members.values())
        )
    finally:
        _FILTERS.pop("source")


def test_the_points_mall_lists_exchangeable_templates(client, admin_headers, scene):
    cheap = new_template(client, admin_headers, name="便宜", points_price=20)
    dear = new_template(client, admin_headers, name="贵", points_price=500, total_stock=5)
    new_template(client, admin_headers, name="不可兑", points_price=None)
    paused = new_template(client, admin_headers, name="暂停", points_price=10)
    client.post(f"/admin/v1/coupon-templates/{paused['id']}/pause", headers=admin_headers)
    headers = {"Authorization": f"Bearer {issue_member_token(scene.members['SH001'], 'wechat')}"}
    mall = client.get("/mp/v1/coupon-templates", headers=headers)
    assert mall.status_code == 200, mall.get_json()
    items = mall.get_json()["items"]
    assert [(t["id"], t["points_price"], t["stock_left"]) for t in items] == [
        (cheap["id"], 20, None),
        (dear["id"], 500, 5),
    ]
    assert mall.get_json()["balance"] == 0
    assert_error(client.get("/mp/v1/coupon-templates"), 401, "AUTH_REQUIRED")


def test_member_search_by_tier_and_lifecycle_uses_the_segment_fields(client, scene):
    from datetime import timedelta

    from app.common.clock import utcnow
    from tests.intel_support import buy

    hq = scene.tokens["hq_admin"]
    ladder = {
        "basis": "payer_fen_12m",
        "tiers": [
            {"code": "STD", "name": "普通", "threshold": 0},
            {"code": "GOLD", "name": "金卡", "threshold": 10000},
        ],
    }
    assert client.put("/admin/v1/tiers", json=ladder, headers=hq).status_code == 200
    gold = scene.members["BJ001"]
    buy(gold, scene.stores["BJ001"], 20000, utcnow() - timedelta(hours=1))
    search = "/admin/v1/members/search"
    assert ids(client.get(f"{search}?tier=GOLD", headers=hq)) == [gold]
    assert ids(client.get(f"{search}?tier=STD", headers=hq)) == sorted(
        m for m in scene.members.values() if m != gold
    )
    assert ids(client.get(f"{search}?lifecycle=new", headers=hq)) == sorted(scene.members.values())
    assert ids(client.get(f"{search}?lifecycle=lost", headers=hq)) == []
    # scoped as every search: the store manager of SH001 never sees BJ001's gold member
    scoped = client.get(f"{search}?tier=GOLD", headers=scene.tokens["store_manager"])
    assert ids(scoped) == []
    assert_error(client.get(f"{search}?lifecycle=asleep", headers=hq), 422, "INVALID_RULE")


def test_segment_fields_are_listed_for_forms(client, scene):
    listed = client.get("/admin/v1/segments/fields", headers=scene.tokens["hq_analyst"])
    assert listed.status_code == 200
    fields = {f["name"]: f["ops"] for f in listed.get_json()["items"]}
    assert (
        fields["lifecycle"] == ["=", "!=", "in"] and "tier" in fields and "<" in fields["r_score"]
    )
    refused = client.get("/admin/v1/segments/fields", headers=scene.tokens["store_manager"])
    assert_error(refused, 403, "ROLE_NOT_ALLOWED")


def test_an_export_with_full_phones_is_for_phone_roles_only(client, scene):
    from app.extensions import db
    from app.intel import segments
    from app.intel.models import SegmentExport

    hq = scene.tokens["hq_admin"]
    made = client.post(
        "/admin/v1/segments",
        json={"name": "all", "rule": {"field": "lifecycle", "op": "=", "value": "new"}},
        headers=hq,
    ).get_json()
    urls = []
    for reveal in (False, True):
        export = client.post(
            f"/admin/v1/segments/{made['id']}/exports", json={"reveal_phones": reveal}, headers=hq
        ).get_json()
        if db.session.get(SegmentExport, export["id"]).state != "done":
            segments.write_export(export["id"])
        urls.append(f"/admin/v1/segments/{made['id']}/exports/{export['id']}/csv")
    masked, revealed = urls
    analyst = scene.tokens["hq_analyst"]
    body = client.get(masked, headers=analyst).get_data(as_text=True)
    assert body.count("138****") == 3 and not any(p in body for p in scene.phones.values())
    assert_error(client.get(revealed, headers=analyst), 403, "ROLE_NOT_ALLOWED")
    assert scene.phones["SH001"] in client.get(revealed, headers=hq).get_data(as_text=True)
