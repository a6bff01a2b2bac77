"""The console's CRM and admin pages over a test client: a member's tier, lifecycle and RFM; the
tier ladder; segments (live count, masked preview, CSV export); campaigns (dry run, run,
counts, attribution, cancel); SKU tag rules; operator management; login attempts in the audit;
the ops page. Each goes through the same service as the admin API, scoped by role."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.common.clock import utcnow
from app.extensions import db
from app.intel import segments
from app.intel.jobs import nightly, run_campaigns
from app.intel.models import Campaign, Segment, SegmentExport
from app.intel.services import lifecycle_of
from app.operators.models import Operator, WriteAudit
from app.points.services import balance_of
from app.tags import catalog
from app.tags.models import TagRule
from app.tiers.services import ladder_view
from tests.console_scene import PASSWORD, build_scene
from tests.intel_support import buy
from tests.test_console_pages import log_in, page_csrf

LADDER = {
    "basis": "payer_fen_12m",
    "tiers": [
        {"code": "STD", "name": "普通会员", "threshold": 0},
        {"code": "GOLD", "name": "金卡会员", "threshold": 10000, "earn_multiplier_pct": 150},
    ],
}


@pytest.fixture
def scene():
    return build_scene()


def post(client, path: str, data: dict, *, page: str | None = None):
    _html, token = page_csrf(client, page or path)
    return client.post(path, data={**data, "csrf_token": token})


def flashes(client, path: str) -> str:
    return client.get(path).get_data(as_text=True)


def test_the_member_page_shows_tier_lifecycle_rfm_beside_every_record(client, scene):
    assert (
        client.put("/admin/v1/tiers", json=LADDER, headers=scene.tokens["hq_admin"]).status_code
        == 200
    )
    member = scene.members["SH001"]
    buy(member, scene.stores["SH001"], 20000, utcnow() - timedelta(days=1))
    nightly(utcnow())
    log_in(client, "hq.admin")
    client.get("/console/lang/en")
    html = client.get(f"/console/members/{member}").get_data(as_text=True)
    assert "金卡会员" in html.split('id="tier"')[1].split("</dd>")[0]
    assert f'data-stage="{lifecycle_of(member)}"' in html  # the intel service's stage
    rfm = html.split('id="rfm"')[1].split("</dd>")[0]
    assert "R" in rfm and "客户" in rfm  # scores and the RFM label
    for section in ("Points ledger", "Coupons", "Purchases", "Tag history", "Clerk notes"):
        assert section in html, section
    assert "Identities" in html and "¥200.00" in html


def test_hq_admin_replaces_the_ladder_through_the_tiers_service_and_others_only_read(client, scene):
    log_in(client, "hq.admin")
    form = {
        "rows": "3",
        "basis": "payer_fen_12m",
        "keep_months": "12",
        "review_max_steps": "1",
        "code_0": "STD",
        "name_0": "普通",
        "threshold_0": "0",
        "code_1": "VIP",
        "name_1": "VIP",
        "threshold_1": "50000",
        "multiplier_1": "120",
        "code_2": "",
    }
    assert post(client, "/console/tiers", form).status_code == 302
    ladder = ladder_view()
    assert [(t["code"], t["threshold"]) for t in ladder["tiers"]] == [("STD", 0), ("VIP", 50000)]
    assert ladder["updated_by"] == "operator:hq.admin"
    bad = post(client, "/console/tiers", {**form, "threshold_0": "5"})
    assert bad.status_code == 302
    assert "INVALID_LADDER" in flashes(client, "/console/tiers")
    client.post("/console/logout", data={"csrf_token": page_csrf(client, "/console/")[1]})

    log_in(client, "hq.analyst")
    html, token = page_csrf(client, "/console/tiers")
    assert "VIP" in html and 'name="code_0"' not in html  # read-only view
    client.post("/console/tiers", data={**form, "threshold_1": "1", "csrf_token": token})
    assert ladder_view()["tiers"][1]["threshold"] == 50000


def test_segments_count_live_preview_masked_save_and_export(client, scene):
    log_in(client, "hq.admin")
    html = client.get("/console/segments?field=lifecycle&op=%3D&value=new").get_data(as_text=True)
    assert 'id="live-count">3<' in html
    assert "138****" in html and not any(p in html for p in scene.phones.values())
    rule = {"field": "lifecycle", "op": "=", "value": "new"}
    response = post(
        client,
        "/console/segments",
        {"name": "新会员", "rule": json.dumps(rule)},
    )
    assert response.status_code == 302
    segment = db.session.scalars(select(Segment)).one()
    assert segment.rule == rule and segment.created_by == "operator:hq.admin"
    page = client.get(f"/console/segments/{segment.id}").get_data(as_text=True)
    assert 'id="live-count">3<' in page

    for reveal in ("", "1"):
        post(
            client,
            f"/console/segments/{segment.id}/exports",
            {"reveal_phones": reveal},
            page=f"/console/segments/{segment.id}",
        )
    exports = db.session.scalars(select(SegmentExport).order_by(SegmentExport.id)).all()
    for export in exports:
        if export.state != "done":  # queued on a real Redis: run the job here
            segments.write_export(export.id)
    masked, revealed = (e.id for e in exports)
    csv_masked = client.get(f"/console/segments/{segment.id}/exports/{masked}.csv")
    assert csv_masked.status_code == 200 and csv_masked.get_data(as_text=True).count("138****") == 3
    csv_full = client.get(f"/console/segments/{segment.id}/exports/{revealed}.csv")
    assert scene.phones["SH001"] in csv_full.get_data(as_text=True)
    client.post("/console/logout", data={"csrf_token": page_csrf(client, "/console/")[1]})

    log_in(client, "hq.analyst")  # reads segments, never full phones, saves nothing
    assert client.get(f"/console/segments/{segment.id}/exports/{masked}.csv").status_code == 200
    assert client.get(f"/console/segments/{segment.id}/exports/{revealed}.csv").status_code == 403
    post(client, "/console/segments", {"name": "x", "rule": json.dumps(rule)})
    assert db.session.scalar(select(Segment.id).where(Segment.name == "x")) is None


def test_the_segment_form_offers_every_field_the_segments_service_knows(client, scene):
    segments.register_field("probe_field_for_test", lambda op, value, cond, now: None)
    try:
        log_in(client, "hq.admin")
        html = client.get("/console/segments").get_data(as_text=True)
        assert 'value="probe_field_for_test"' in html and 'value="lifecycle"' in html
    finally:
        segments.FIELDS.pop("probe_field_for_test")


def test_a_bad_rule_is_refused_with_its_path(client, scene):
    log_in(client, "hq.admin")
    response = client.get("/console/segments?field=lifecycle&op=%3C&value=new")
    assert response.status_code == 422 and "INVALID_RULE" in response.get_data(as_text=True)


def test_campaigns_dry_run_run_counts_attribution_and_cancel(client, scene):
    log_in(client, "hq.admin")
    segment = segments.create_segment(
        "全部新会员", {"field": "lifecycle", "op": "=", "value": "new"}, "t"
    )
    base = {"segment_id": str(segment.id), "kind": "points", "points": "10", "reason": "欢迎"}
    assert (
        post(client, "/console/campaigns", {**base, "dry_run": "1", "name": "试算"}).status_code
        == 302
    )
    dry = db.session.scalars(select(Campaign).where(Campaign.name == "试算")).one()
    html = client.get(f"/console/campaigns/{dry.id}").get_data(as_text=True)
    assert dry.state == "dry_run" and 'data-count="targeted">3<' in html

    post(client, "/console/campaigns", {**base, "name": "送积分"})
    live = db.session.scalars(select(Campaign).where(Campaign.name == "送积分")).one()
    run_campaigns(utcnow() + timedelta(minutes=1))
    db.session.expire_all()
    html = client.get(f"/console/campaigns/{live.id}").get_data(as_text=True)
    assert 'data-count="done">3<' in html and 'id="attribution"' in html
    assert all(balance_of(m) == 10 for m in scene.members.values())

    later = (utcnow() + timedelta(days=3)).astimezone().strftime("%Y-%m-%dT%H:%M")
    post(client, "/console/campaigns", {**base, "name": "下周", "scheduled_at": later})
    scheduled = db.session.scalars(select(Campaign).where(Campaign.name == "下周")).one()
    assert scheduled.state == "scheduled"
    post(
        client,
        f"/console/campaigns/{scheduled.id}/cancel",
        {},
        page=f"/console/campaigns/{scheduled.id}",
    )
    db.session.expire_all()
    assert db.session.get(Campaign, scheduled.id).state == "cancelled"
    bad = post(client, "/console/campaigns", {**base, "kind": "points", "points": ""})
    assert bad.status_code == 302 and "INVALID_ACTION" in flashes(client, "/console/campaigns")


def test_sku_rules_are_added_and_archived_on_the_tag_page(client, scene):
    group = catalog.create_group("口味", exclusive=False, tag_names=["抹茶控"])
    tag = group.tags[0]
    log_in(client, "hq.admin")
    post(
        client,
        "/console/tags",
        {"action": "add_rule", "tag_id": str(tag.id), "skus": "MT-01，MT-02"},
    )
    rule = db.session.scalars(select(TagRule)).one()
    assert sorted(s.sku for s in rule.skus) == ["MT-01", "MT-02"]
    html = client.get("/console/tags").get_data(as_text=True)
    assert "MT-02" in html and f'data-rule="{rule.id}"' in html
    post(client, "/console/tags", {"action": "archive_rule", "rule_id": str(rule.id)})
    db.session.expire_all()
    assert db.session.get(TagRule, rule.id).archived_at is not None


def test_hq_admin_manages_operators_on_the_console_and_every_change_is_audited(client, app, scene):
    log_in(client, "hq.admin")
    form = {
        "action": "create",
        "username": "bj.area",
        "name": "北京区域",
        "password": "area-pass-123",
        "role": "region_manager",
        "stores": ["BJ001", "BJ002"],
    }
    assert post(client, "/console/operators", form).status_code == 302
    created = db.session.scalars(select(Operator).where(Operator.username == "bj.area")).one()
    assert created.role == "region_manager" and len(created.stores) == 2
    other = app.test_client()
    assert log_in(other, "bj.area", "area-pass-123").status_code == 302

    post(client, "/console/operators", {"action": "disable", "operator_id": str(created.id)})
    assert other.get("/console/").status_code == 302  # the session ended
    assert log_in(other, "bj.area", "area-pass-123").status_code == 403
    post(client, "/console/operators", {"action": "enable", "operator_id": str(created.id)})
    for _ in range(5):
        log_in(other, "bj.area", "wrong-password")
    assert log_in(other, "bj.area", "area-pass-123").status_code == 403  # locked out
    post(client, "/console/operators", {"action": "unlock", "operator_id": str(created.id)})
    post(
        client,
        "/console/operators",
        {"action": "password", "operator_id": str(created.id), "password": "fresh-pass-456"},
    )
    assert log_in(other, "bj.area", "area-pass-123").status_code == 401
    assert log_in(other, "bj.area", "fresh-pass-456").status_code == 302

    writes = db.session.scalars(
        select(WriteAudit).where(WriteAudit.endpoint == "console.operators_page")
    ).all()
    assert len(writes) == 5 and {w.actor for w in writes} == {"operator:hq.admin"}
    stored = json.dumps([w.target for w in writes]) + "".join(w.path for w in writes)
    assert "pass" not in stored

    log_in(other, "region.manager")
    assert other.get("/console/operators").status_code == 403
    assert "BJ001" not in other.get("/console/").get_data(as_text=True).split("<main")[0]


def test_console_logins_are_audited_with_the_address_and_never_the_password(client, scene):
    log_in(client, "store.manager", "secret-wrong-1")
    log_in(client, "nobody.here", "secret-wrong-2")
    log_in(client, "store.manager")
    rows = db.session.scalars(
        select(WriteAudit).where(WriteAudit.endpoint == "console.login").order_by(WriteAudit.id)
    ).all()
    assert [(r.actor, r.target["login"], r.status) for r in rows] == [
        ("operator:store.manager", "INVALID_CREDENTIALS", 401),
        ("operator:nobody.here", "INVALID_CREDENTIALS", 401),
        ("operator:store.manager", "ok", 302),
    ]
    assert rows[-1].role == "store_manager" and all(r.ip == "127.0.0.1" for r in rows)
    everything = json.dumps(
        [[str(getattr(r, c.name)) for c in WriteAudit.__table__.c] for r in rows]
    )
    assert "secret-wrong" not in everything and PASSWORD not in everything


def test_the_ops_page_shows_jobs_outbox_and_journal_backlog_and_lag(client, scene):
    log_in(client, "hq.analyst")
    html = client.get("/console/ops").get_data(as_text=True)
    for part in ('id="outbox-backlog"', 'id="journal-backlog"', 'id="journal-lag"', "audit"):
        assert part in html, part


def test_members_are_searched_by_lifecycle_on_the_console_within_the_scope(client, scene):
    log_in(client, "store.manager")
    html = client.get("/console/members?lifecycle=new").get_data(as_text=True)
    assert html.count('class="phone"') == 1 and "138****0000" in html
    assert client.get("/console/members?lifecycle=asleep").status_code == 422


def test_a_templates_report_lists_the_campaigns_that_issue_it(client, scene):
    from app.coupons.templates import create_template
    from app.intel.campaigns import create_campaign

    template = create_template(
        {"name": "回归券", "kind": "cash_off", "value_fen": 500, "valid_days": 30}
    )
    segment = segments.create_segment("新", {"field": "lifecycle", "op": "=", "value": "new"}, "t")
    create_campaign(
        segment_id=segment.id, action={"issue_coupon": template.id}, name="唤回", dry_run=True
    )
    log_in(client, "hq.analyst")
    html = client.get(f"/console/coupons?report={template.id}").get_data(as_text=True)
    assert "唤回" in html.split('id="report-campaigns"')[1].split("</ul>")[0]
