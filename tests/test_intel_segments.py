"""Segments on the small brand of the stats tests (stages and scores computed there by hand).

After the nightly job on 2026-11-23: m1 active (home A), m2 silent (home B, opted out),
m3 new (home A), m4 sleeping (home A), m5 lost (home B), m6 new (no purchase, born in March,
tagged VIP, holds an unused coupon).
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import update

from app.common.clock import frozen
from app.coupons import services as coupons
from app.db import unit_of_work
from app.extensions import db
from app.intel.jobs import nightly
from app.intel.segments import count_members, validate_rule
from app.members.models import Member
from app.tags import catalog
from app.tags.services import Actor, change_member_tags
from tests.test_intel_stats import TODAY, brand  # noqa: F401  (the brand fixture)
from tests.test_jobs_scheduler import drain_queues


@pytest.fixture
def segmented(brand):  # noqa: F811
    group = catalog.create_group("客户等级", exclusive=False, tag_names=["VIP"])
    vip = group.tags[0].id
    with unit_of_work():
        change_member_tags(brand["m6"], add=[vip], remove=[], actor=Actor(source="rule"))
        db.session.execute(
            update(Member).where(Member.id == brand["m6"]).values(birthday=date(1990, 3, 15))
        )
        db.session.execute(
            update(Member).where(Member.id == brand["m2"]).values(marketing_opt_out=True)
        )
    with frozen(TODAY):
        template = coupons.create_template(
            {
                "name": "券",
                "kind": "cash_off",
                "value_fen": 500,
                "valid_days": 7,
                "giftable": False,
            },
            created_by="test",
        ).id
        coupons.issue_to_members(template, [brand["m6"]], admin_name="test")
        nightly()
    return {**brand, "vip": vip, "template": template}


def c(field, op, value, **extra):
    return {"field": field, "op": op, "value": value, **extra}


def test_counts_by_every_field(segmented):
    s = segmented
    cases = [
        (c("lifecycle", "=", "active"), 1),
        ({"any": [c("lifecycle", "=", "lost"), c("lifecycle", "=", "sleeping")]}, 2),
        (c("lifecycle", "in", ["new"]), 2),
        (c("days_since_last_purchase", "<=", 30), 2),  # m1 3 days, m3 22 days
        (c("days_since_last_purchase", "=", 22), 1),
        (c("days_since_last_purchase", ">", 180), 1),  # m5
        (c("purchase_count", ">=", 2), 3),
        (c("payer_fen_12m", ">", 20000), 2),
        (c("store", "=", s["A"]), 3),
        ({"not": c("store", "=", s["A"])}, 3),  # m2, m5 and m6 (no home store)
        (c("rfm_label", "=", "重要价值客户"), 2),
        (c("r_score", ">=", 4), 2),
        ({"not": c("r_score", ">=", 4)}, 4),
        (c("city", "=", "上海"), 5),
        (c("tag_id", "=", s["vip"]), 1),
        (c("birthday_month", "=", 3), 1),
        (c("marketing_opt_in", "=", False), 1),
        (c("join_date", "=", "2025-06-01"), 6),
        (c("join_channel", "=", "pos"), 6),
        (c("has_unused_coupon", "=", s["template"]), 1),
        (c("bought_sku", "=", "SKU-1", days=30), 0),
        (
            {
                "all": [
                    c("lifecycle", "in", ["active", "new"]),
                    c("purchase_count", ">=", 1),
                    c("store", "=", s["A"]),
                ]
            },
            2,
        ),
    ]
    with frozen(TODAY):
        got = [(rule, count_members(rule)) for rule, _ in cases]
    assert got == [(rule, n) for rule, n in cases]


@pytest.mark.parametrize(
    "rule, path",
    [
        ({"field": "nope", "op": "=", "value": 1}, "rule.field"),
        ({"field": "lifecycle", "op": "<", "value": "new"}, "rule.op"),
        ({"field": "lifecycle", "op": "=", "value": "gone"}, "rule.value"),
        ({"all": []}, "rule"),
        ({"all": [{"field": "purchase_count", "op": "in", "value": 3}]}, "rule.all.0.value"),
        ({"not": {"field": "purchase_count", "op": ">"}}, "rule.not.value"),
        ("everyone", "rule"),
    ],
)
def test_a_bad_rule_is_refused_with_the_path_of_the_mistake(rule, path):
    from app.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as info:
        validate_rule(rule)
    assert info.value.code == "INVALID_RULE" and path in info.value.details


def test_segment_endpoints_count_live_preview_masked_and_export(client, admin_headers, segmented):
    s = segmented
    rule = {"all": [c("store", "=", s["A"]), c("purchase_count", ">=", 1)]}
    with frozen(TODAY):
        created = client.post(
            "/admin/v1/segments", json={"name": "A 店老客", "rule": rule}, headers=admin_headers
        )
        assert created.status_code == 201, created.get_json()
        segment = created.get_json()
        assert segment["member_count"] == 3
        # live: a new purchase at A by m6 makes A its home store
        from tests.intel_support import buy

        buy(s["m6"], s["A"], 1000, TODAY)
        detail = client.get(f"/admin/v1/segments/{segment['id']}", headers=admin_headers)
        assert detail.get_json()["member_count"] == 4
        preview = client.get(f"/admin/v1/segments/{segment['id']}/preview", headers=admin_headers)
    members = preview.get_json()["members"]
    assert len(members) == 4
    db.session.execute(update(Member).where(Member.id == s["m1"]).values(phone="13812345678"))
    db.session.commit()
    export = client.post(
        f"/admin/v1/segments/{segment['id']}/exports", json={}, headers=admin_headers
    )
    assert export.status_code == 202
    export_id = export.get_json()["id"]
    drain_queues()  # with a real Redis the export job waits for a worker
    state = client.get(
        f"/admin/v1/segments/{segment['id']}/exports/{export_id}", headers=admin_headers
    ).get_json()
    assert state["state"] == "done" and state["row_count"] == 4
    csv = client.get(
        f"/admin/v1/segments/{segment['id']}/exports/{export_id}/csv", headers=admin_headers
    )
    assert csv.mimetype == "text/csv"
    text = csv.get_data(as_text=True)
    assert "138****5678" in text and "13812345678" not in text
    bad = client.post(
        "/admin/v1/segments", json={"name": "x", "rule": {"any": "no"}}, headers=admin_headers
    )
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "INVALID_RULE"
    assert client.get("/admin/v1/segments/999", headers=admin_headers).status_code == 404


def test_an_imported_member_is_in_segments_after_the_nightly_job(segmented):
    from app.members.services import import_member

    imported = import_member(phone="13900001111", name="老会员")
    rule = {"field": "join_channel", "op": "=", "value": "import"}
    assert count_members(rule) == 0  # no stats row yet: imports fire no join
    with frozen(TODAY):
        nightly()
        assert count_members(rule) == 1
        assert count_members(c("lifecycle", "=", "new")) == 3
    assert imported.id


def test_tier_is_a_segment_field(client, admin_headers, segmented):
    ladder = {
        "basis": "payer_fen_12m",
        "tiers": [
            {"code": "normal", "name": "普通会员", "threshold": 0},
            {"code": "vip", "name": "VIP", "threshold": 25000},
        ],
    }
    response = client.put("/admin/v1/tiers", json=ladder, headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    drain_queues()
    with frozen(TODAY):
        assert count_members(c("tier", "in", ["normal", "vip"])) == 6
        assert count_members(c("tier", "=", "vip")) == 2  # m2 (300 yuan), m4 (500 yuan)
        assert count_members({"not": c("tier", "=", "vip")}) == 4


def test_members_no_longer_live_are_never_counted(segmented):
    """m1 (active, home A) is erased: every count leaves it out, whether the rule reads only
    the stats (no join with members) or also a member column (joined)."""
    from app.members.erasure import erase_member

    s = segmented
    on_stats = c("store", "=", s["A"])  # m1, m3, m4
    with_member_column = {"all": [on_stats, c("marketing_opt_in", "=", True)]}
    with frozen(TODAY):
        assert (count_members(on_stats), count_members(with_member_column)) == (3, 3)
        erase_member(s["m1"], requested_by="hq")
        db.session.commit()
        assert (count_members(on_stats), count_members(with_member_column)) == (2, 2)
        assert count_members(c("lifecycle", "=", "active")) == 0
