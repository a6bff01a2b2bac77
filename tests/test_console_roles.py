"""Roles and data scopes on the admin API: one authorization layer, 0 records outside scope,
no full phone for roles without phone visibility, every write audited."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.operators.models import WriteAudit
from tests.console_scene import build_scene
from tests.test_foundation_http import assert_error


@pytest.fixture
def scene():
    return build_scene()


def codes(response):
    assert response.status_code == 200, response.get_json()
    return sorted(
        item["store"] if "store" in item else item["code"] for item in response.get_json()["items"]
    )


def test_an_existing_token_keeps_full_hq_admin_rights(client, admin_headers, scene):
    assert codes(client.get("/admin/v1/stores", headers=admin_headers)) == [
        "BJ001",
        "BJ002",
        "SH001",
    ]
    member = client.get(f"/admin/v1/members/{scene.members['SH001']}", headers=admin_headers)
    assert member.get_json()["phone"] == scene.phones["SH001"]


@pytest.mark.parametrize(
    "role,expected",
    [
        ("hq_admin", ["BJ001", "BJ002", "SH001"]),
        ("hq_analyst", ["BJ001", "BJ002", "SH001"]),
        ("region_manager", ["BJ001", "BJ002"]),
        ("store_manager", ["SH001"]),
    ],
)
def test_each_role_lists_only_its_stores_terminals_and_clerks(client, scene, role, expected):
    headers = scene.tokens[role]
    assert codes(client.get("/admin/v1/stores", headers=headers)) == expected
    assert codes(client.get("/admin/v1/terminals", headers=headers)) == expected
    assert codes(client.get("/admin/v1/clerks", headers=headers)) == expected


def test_a_store_manager_cannot_see_or_touch_another_store(client, scene):
    headers = scene.tokens["store_manager"]
    assert_error(client.get("/admin/v1/stores/BJ001", headers=headers), 404, "STORE_NOT_FOUND")
    assert_error(
        client.get("/admin/v1/stores/BJ001/clerks", headers=headers), 404, "STORE_NOT_FOUND"
    )
    other_clerk = scene.clerks["BJ001"]
    assert_error(
        client.post(f"/admin/v1/clerks/{other_clerk}/disable", headers=headers),
        404,
        "CLERK_NOT_FOUND",
    )
    assert_error(
        client.post(f"/admin/v1/terminals/{scene.terminals['BJ001']}/revoke", headers=headers),
        404,
        "TERMINAL_NOT_FOUND",
    )
    assert_error(
        client.get(f"/admin/v1/members/{scene.members['BJ001']}", headers=headers),
        404,
        "MEMBER_NOT_FOUND",
    )
    # endpoints that do not filter by store are for HQ roles only
    assert_error(client.get("/admin/v1/coupon-templates", headers=headers), 403, "ROLE_NOT_ALLOWED")


def test_a_store_manager_manages_its_own_clerks_and_terminals(client, scene):
    headers = scene.tokens["store_manager"]
    own = scene.clerks["SH001"]
    disabled = client.post(f"/admin/v1/clerks/{own}/disable", headers=headers)
    assert disabled.status_code == 200 and disabled.get_json()["status"] == "disabled"
    rotated = client.post(f"/admin/v1/terminals/{scene.terminals['SH001']}/rotate", headers=headers)
    assert rotated.status_code == 200 and rotated.get_json()["activation_code"]
    created = client.post(
        "/admin/v1/stores/SH001/clerks",
        headers=headers,
        json={"username": "newclerk", "password": "long-enough", "name": "新"},
    )
    assert created.status_code == 201
    # but not the stores themselves
    assert_error(
        client.patch("/admin/v1/stores/SH001", json={"name": "x"}, headers=headers),
        403,
        "ROLE_NOT_ALLOWED",
    )


def test_the_analyst_reads_everything_but_writes_nothing_and_sees_no_phone(client, scene):
    headers = scene.tokens["hq_analyst"]
    member = client.get(f"/admin/v1/members/{scene.members['BJ001']}", headers=headers).get_json()
    assert member["phone"] == "138****0001"
    assert scene.phones["BJ001"] not in str(member)
    for call in (
        client.post("/admin/v1/stores", json={"code": "X1", "name": "x"}, headers=headers),
        client.post(f"/admin/v1/clerks/{scene.clerks['SH001']}/disable", headers=headers),
        client.post(
            f"/admin/v1/members/{scene.members['SH001']}/points/adjustments",
            json={"points": 5, "reason": "x"},
            headers=headers,
        ),
    ):
        assert_error(call, 403, "ROLE_NOT_ALLOWED")


def test_managers_see_masked_phones_only(client, scene):
    for role, code in (("region_manager", "BJ002"), ("store_manager", "SH001")):
        body = client.get(f"/admin/v1/members/{scene.members[code]}", headers=scene.tokens[role])
        assert body.status_code == 200
        assert body.get_json()["phone"].count("*") == 4


def test_every_write_is_audited_with_who_what_when_and_where(client, scene):
    headers = scene.tokens["store_manager"]
    client.post(
        f"/admin/v1/clerks/{scene.clerks['SH001']}/disable",
        headers=headers,
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    client.post(f"/admin/v1/clerks/{scene.clerks['BJ001']}/disable", headers=headers)
    client.get("/admin/v1/stores", headers=headers)  # reads are not writes
    rows = db.session.scalars(select(WriteAudit).order_by(WriteAudit.id)).all()
    assert [(r.actor, r.role, r.method, r.status) for r in rows] == [
        ("token:store_manager-token", "store_manager", "POST", 200),
        ("token:store_manager-token", "store_manager", "POST", 404),
    ]
    first = rows[0]
    assert first.path == f"/admin/v1/clerks/{scene.clerks['SH001']}/disable"
    assert first.target == {"clerk_id": str(scene.clerks["SH001"])}
    assert first.ip == "10.1.2.3" and first.at is not None


def test_tokens_are_created_with_a_role_and_stores_from_the_cli(app, scene, client):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["admin", "create-token", "bj", "--role", "region_manager", "--store", "BJ001"]
    )
    assert result.exit_code == 0, result.output
    headers = {"Authorization": f"Bearer {result.output.strip().splitlines()[-1]}"}
    assert codes(client.get("/admin/v1/stores", headers=headers)) == ["BJ001"]
    refused = runner.invoke(args=["admin", "create-token", "x", "--role", "store_manager"])
    assert refused.exit_code != 0 and "exactly one store" in refused.output


def test_operators_are_created_from_the_cli_with_role_and_scope(app, scene):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "operators",
            "create",
            "li",
            "--role",
            "store_manager",
            "--store",
            "BJ002",
            "--password",
            "long-enough-pw",
        ]
    )
    assert result.exit_code == 0, result.output
    listed = runner.invoke(args=["operators", "list"])
    assert "li\tstore_manager\tactive\tBJ002" in listed.output
    short = runner.invoke(
        args=["operators", "create", "wu", "--role", "hq_admin", "--password", "short"]
    )
    assert short.exit_code != 0 and "PASSWORD_TOO_SHORT" in short.output


def test_the_write_audit_is_readable_by_hq_roles_only(client, scene):
    client.post(
        f"/admin/v1/clerks/{scene.clerks['SH001']}/disable", headers=scene.tokens["store_manager"]
    )
    listed = client.get("/admin/v1/audit-log", headers=scene.tokens["hq_analyst"])
    assert listed.status_code == 200
    assert [(a["actor"], a["status"]) for a in listed.get_json()["items"]] == [
        ("token:store_manager-token", 200)
    ]
    assert_error(
        client.get("/admin/v1/audit-log", headers=scene.tokens["store_manager"]),
        403,
        "ROLE_NOT_ALLOWED",
    )
