"""Campaigns and journeys act at most once per member, whatever retries or crashes happen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from app.common.clock import frozen
from app.coupons import services as coupons
from app.coupons.models import Coupon
from app.db import unit_of_work
from app.extensions import db
from app.intel import campaigns, journeys
from app.intel.models import CampaignTarget, JourneyStepRun
from app.members.models import Member
from app.outbox.models import OutboxMessage
from app.points.models import PointsEntry
from app.points.services import balance_of
from tests.conftest import TEST_SECRET, on_postgres
from tests.intel_support import at, buy, member, store

NOW = at(2026, 11, 23)
EVERYONE = {"field": "purchase_count", "op": ">=", "value": 0}


def segment(client, headers, rule=EVERYONE) -> int:
    response = client.post(
        "/admin/v1/segments", json={"name": "all", "rule": rule}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def members(n: int) -> list[int]:
    return [member(at(2026, 1, 1)) for _ in range(n)]


def entries(kind_key: str) -> int:
    return db.session.scalar(
        select(func.count()).where(PointsEntry.idempotency_key.like(f"{kind_key}%"))
    )


def test_dry_run_counts_and_never_runs(client, admin_headers):
    members(3)
    seg = segment(client, admin_headers)
    response = client.post(
        "/admin/v1/campaigns",
        json={"segment_id": seg, "action": {"points": 10, "reason": "感恩回馈"}, "dry_run": True},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["state"], body["counts"]["targeted"]) == ("dry_run", 3)
    campaigns.run_campaigns()
    assert entries("campaign:") == 0


def test_points_campaign_once_per_member_skipping_opt_outs_and_over_budget(client, admin_headers):
    ids = members(5)
    db.session.execute(update(Member).where(Member.id == ids[0]).values(marketing_opt_out=True))
    db.session.commit()
    seg = segment(client, admin_headers)
    created = client.post(
        "/admin/v1/campaigns",
        json={"segment_id": seg, "action": {"points": 10, "reason": "感恩回馈"}, "budget": 3},
        headers=admin_headers,
    ).get_json()
    assert created["state"] == "scheduled"
    campaigns.run_campaigns()
    campaigns.run_campaigns()  # a second run finds nothing to do
    body = client.get(f"/admin/v1/campaigns/{created['id']}", headers=admin_headers).get_json()
    assert body["state"] == "done"
    assert body["counts"] | {"skipped_by_reason": None} == {
        "targeted": 5,
        "done": 3,
        "skipped": 2,
        "holdout": 0,
        "pending": 0,
        "skipped_by_reason": None,
    }
    assert body["counts"]["skipped_by_reason"] == {"opted_out": 1, "budget": 1}
    assert entries(f"campaign:{created['id']}:") == 3
    assert [balance_of(i) for i in ids] == [0, 10, 10, 10, 0]


def test_a_scheduled_campaign_waits_for_its_time(client, admin_headers):
    members(2)
    seg = segment(client, admin_headers)
    with frozen(NOW):
        created = campaigns.create_campaign(
            segment_id=seg, action={"message": "promotion"}, scheduled_at=NOW + timedelta(hours=2)
        )
        campaigns.run_campaigns()
        assert campaigns.get_campaign(created.id).state == "scheduled"
    with frozen(NOW + timedelta(hours=2)):
        campaigns.run_campaigns()
    assert campaigns.get_campaign(created.id).state == "done"
    assert (
        db.session.scalar(
            select(func.count()).where(OutboxMessage.dedupe_key.like(f"campaign:{created.id}:%"))
        )
        == 2
    )


def test_a_worker_dying_mid_chunk_then_a_rerun_acts_once_per_member(
    client, admin_headers, monkeypatch
):
    ids = members(7)
    seg = segment(client, admin_headers)
    created = campaigns.create_campaign(segment_id=seg, action={"points": 5, "reason": "r"})
    real_act, calls = campaigns.act, []

    def dies_on_the_fifth(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 5:
            raise SystemExit("worker killed")  # after acting on four members of this chunk
        return real_act(*args, **kwargs)

    monkeypatch.setattr(campaigns, "act", dies_on_the_fifth)
    with pytest.raises(SystemExit):
        campaigns.run_campaigns(chunk=3)  # chunk 1 (3 members) committed, chunk 2 dies
    db.session.rollback()
    assert entries(f"campaign:{created.id}:") == 3
    monkeypatch.setattr(campaigns, "act", real_act)
    campaigns.run_campaigns(chunk=3)
    campaigns.run_campaigns(chunk=3)
    assert entries(f"campaign:{created.id}:") == 7
    assert [balance_of(i) for i in ids] == [5] * 7
    counts = campaigns.counts(campaigns.get_campaign(created.id))
    assert (counts["done"], counts["pending"]) == (7, 0)


def test_an_action_already_taken_under_its_key_is_not_taken_again(client, admin_headers):
    ids = members(2)
    seg = segment(client, admin_headers)
    created = campaigns.create_campaign(segment_id=seg, action={"points": 5, "reason": "r"})
    with unit_of_work():  # as if an earlier run acted on ids[0] and vanished
        campaigns.act(
            ids[0], created.action, key=f"campaign:{created.id}:member:{ids[0]}", source="campaign"
        )
    campaigns.run_campaigns()
    assert [balance_of(i) for i in ids] == [5, 5]


def test_coupon_campaign_honours_stock_and_attributes_purchases_against_a_holdout(
    client, admin_headers
):
    a = store("A")
    ids = members(20)
    with frozen(NOW):
        template = coupons.create_template(
            {
                "name": "回购券",
                "kind": "cash_off",
                "value_fen": 500,
                "valid_days": 7,
                "giftable": False,
                "total_stock": 10,
            },
            created_by="test",
        ).id
        seg = segment(client, admin_headers)
        created = campaigns.create_campaign(
            segment_id=seg, action={"issue_coupon": template}, holdout_percent=30
        )
        campaigns.run_campaigns()
    counts = campaigns.counts(campaigns.get_campaign(created.id))
    holdout = counts["holdout"]
    assert 0 < holdout < 20
    assert counts["done"] == min(10, 20 - holdout)
    assert counts["done"] + counts["skipped"] + holdout == 20
    issued = db.session.scalar(select(func.count()).where(Coupon.template_id == template))
    assert issued == counts["done"]
    done = db.session.scalars(
        select(CampaignTarget.member_id).where(
            CampaignTarget.campaign_id == created.id, CampaignTarget.status == "done"
        )
    ).all()
    buy(done[0], a, 3000, NOW + timedelta(days=1))
    buy(done[0], a, 2000, NOW + timedelta(days=20))  # after the 14-day window
    report = campaigns.attribution(campaigns.get_campaign(created.id))
    assert report["recipients"]["buyers"] == 1 and report["recipients"]["sales_fen"] == 3000
    assert report["holdout"]["members"] == holdout and report["holdout"]["buyers"] == 0
    assert ids  # every member was a candidate


def test_campaign_errors(client, admin_headers):
    seg = segment(client, admin_headers)
    bad = client.post(
        "/admin/v1/campaigns",
        json={"segment_id": seg, "action": {"points": 0}},
        headers=admin_headers,
    )
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "INVALID_ACTION"
    missing = client.post(
        "/admin/v1/campaigns",
        json={"segment_id": 999, "action": {"message": "promotion"}},
        headers=admin_headers,
    )
    assert missing.status_code == 404
    assert client.get("/admin/v1/campaigns/999", headers=admin_headers).status_code == 404


# --- journeys ------------------------------------------------------------------------------
def test_new_customer_journey_runs_each_step_once_on_its_day_with_its_conditions(
    client, admin_headers
):
    a = store("A")
    with frozen(NOW):
        template = coupons.create_template(
            {
                "name": "回购券",
                "kind": "cash_off",
                "value_fen": 500,
                "valid_days": 7,
                "giftable": False,
            },
            created_by="test",
        ).id
    response = client.post(
        "/admin/v1/journeys/from-template",
        json={"template": "new_customer", "coupon_template_id": template},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    journey_id = response.get_json()["id"]
    loyal, lapsed = members(2)
    buy(loyal, a, 1000, NOW)
    buy(lapsed, a, 1000, NOW)
    for day in (0, 7, 7):
        with frozen(NOW + timedelta(days=day, hours=1)):
            journeys.run_journeys()
    buy(loyal, a, 1000, NOW + timedelta(days=10))  # the loyal one comes back
    for day in (20, 30, 30):
        with frozen(NOW + timedelta(days=day, hours=1)):
            journeys.run_journeys()
    coupons_of = {
        m: db.session.scalar(select(func.count()).where(Coupon.owner_id == m))
        for m in (loyal, lapsed)
    }
    assert coupons_of == {loyal: 0, lapsed: 2}
    nurture = {
        m: db.session.scalar(
            select(func.count()).where(
                OutboxMessage.member_id == m, OutboxMessage.kind == "nurture"
            )
        )
        for m in (loyal, lapsed)
    }
    assert nurture == {loyal: 2, lapsed: 2}
    body = client.get(f"/admin/v1/journeys/{journey_id}", headers=admin_headers).get_json()
    assert body["counts"]["enrolled"] == 2
    assert body["counts"]["steps"] == [
        {"step": 0, "done": 2, "skipped": 0},
        {"step": 1, "done": 2, "skipped": 0},
        {"step": 2, "done": 1, "skipped": 1},
        {"step": 3, "done": 1, "skipped": 1},
    ]


def test_a_journey_step_interrupted_mid_chunk_runs_once_per_member(monkeypatch):
    a = store("A")
    journey = journeys.create_journey(
        name="thanks",
        trigger="first_purchase",
        steps=[{"day": 0, "action": {"points": 3, "reason": "谢谢"}}],
    )
    ids = members(6)
    for m in ids:
        buy(m, a, 100, NOW)
    real_act, calls = journeys.act, []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise SystemExit("worker killed")
        return real_act(*args, **kwargs)

    monkeypatch.setattr(journeys, "act", dies_on_the_third)
    monkeypatch.setattr(journeys, "CHUNK", 2)
    with frozen(NOW + timedelta(hours=1)), pytest.raises(SystemExit):
        journeys.run_journeys()
    db.session.rollback()
    monkeypatch.setattr(journeys, "act", real_act)
    with frozen(NOW + timedelta(hours=1)):
        journeys.run_journeys()
        journeys.run_journeys()
    assert [balance_of(m) for m in ids] == [1 + 3] * 6  # 1 point earned + 3 given
    runs = db.session.scalar(select(func.count()).select_from(JourneyStepRun))
    assert runs == 6 and journey.id


def test_lifecycle_journey_starts_from_a_stage_change():
    from app.intel.jobs import nightly

    a = store("A")
    winback = journeys.create_journey(
        name="唤醒", trigger="lifecycle:lost", steps=[{"day": 0, "action": {"message": "nurture"}}]
    )
    m = members(1)[0]
    buy(m, a, 100, at(2026, 5, 1))
    buy(m, a, 100, at(2026, 5, 2))  # active when bought
    with frozen(NOW):  # 205 days later: the nightly job moves the member to lost
        nightly()
        journeys.run_journeys()
        nightly()
        journeys.run_journeys()
    sent = db.session.scalar(
        select(func.count()).where(OutboxMessage.member_id == m, OutboxMessage.kind == "nurture")
    )
    assert sent == 1
    assert journeys.journey_counts(winback.id)["enrolled"] == 1


# --- a real worker process, killed ---------------------------------------------------------
needs_a_worker_process = pytest.mark.skipif(
    not (on_postgres() and os.environ.get("TEST_REDIS_URL")),
    reason="needs PostgreSQL and a real Redis: the worker is another process",
)


def kill_a_worker_then_restart(job: str, done: Callable[[], int], total: int) -> int:
    """Run ``job`` in a real worker process one member per chunk, SIGKILL it once at least 10
    members are acted on, restart it (bigger chunks) until ``total``; returns the count the
    killed worker left."""
    from app.extensions import redis_store
    from app.jobs.runner import enqueue

    root = Path(__file__).resolve().parent.parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT", "ALIPAY"))},
        "HUIYUAN_ENV": "testing",
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": os.environ["TEST_DATABASE_URL"],
        "REDIS_URL": os.environ["TEST_REDIS_URL"],
    }

    def worker() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", "default"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    enqueue(job, chunk=1)
    first = worker()
    deadline = time.monotonic() + 60
    while done() < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    interrupted = done()
    redis_store.client.delete(f"job-lock:{job}")  # the dead worker's lock
    enqueue(job, chunk=50)
    second = worker()
    deadline = time.monotonic() + 90
    while done() < total and time.monotonic() < deadline:
        time.sleep(0.1)
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=20)
    return interrupted


@needs_a_worker_process
def test_a_killed_worker_process_and_a_restart_act_once_per_member(client, admin_headers):
    ids = members(120)
    seg = segment(client, admin_headers)
    created = campaigns.create_campaign(segment_id=seg, action={"points": 2, "reason": "r"})
    db.session.commit()

    def done() -> int:
        db.session.rollback()
        return entries(f"campaign:{created.id}:")

    interrupted = kill_a_worker_then_restart("intel.campaigns", done, 120)
    assert 10 <= interrupted < 120
    assert done() == 120
    db.session.rollback()
    assert {balance_of(i) for i in ids} == {2}


@needs_a_worker_process
def test_a_killed_worker_process_and_a_restart_run_each_journey_step_once_per_member():
    from app.common.clock import utcnow

    a = store("A")
    journey = journeys.create_journey(
        name="首购感谢",
        trigger="first_purchase",
        steps=[{"day": 0, "action": {"points": 2, "reason": "谢谢"}}],
    )
    ids = members(120)
    bought = utcnow() - timedelta(minutes=1)  # due now for the worker, which runs on real time
    for m in ids:
        buy(m, a, 100, bought)
    db.session.commit()

    def done() -> int:
        db.session.rollback()
        return entries(f"journey:{journey.id}:")

    interrupted = kill_a_worker_then_restart("intel.journeys", done, 120)
    assert 10 <= interrupted < 120
    assert done() == 120
    db.session.rollback()
    assert {balance_of(i) for i in ids} == {1 + 2}  # 1 point earned, 2 given once
    runs = db.session.scalar(select(func.count()).select_from(JourneyStepRun))
    assert runs == 120


@pytest.mark.parametrize(
    "path, body",
    [
        ("/admin/v1/journeys", {"name": "j", "trigger": "birthday", "steps": []}),
        ("/admin/v1/journeys", {"name": "j", "trigger": "joined", "steps": [1, "x"]}),
        ("/admin/v1/journeys", {"name": "j", "trigger": "joined", "steps": [{"day": -1}]}),
        (
            "/admin/v1/journeys",
            {
                "name": "j",
                "trigger": "joined",
                "steps": [
                    {"day": 9, "action": {"message": "nurture"}},
                    {"day": 1, "action": {"message": "nurture"}},
                ],
            },
        ),
        (
            "/admin/v1/journeys",
            {
                "name": "j",
                "trigger": "joined",
                "steps": [{"day": 1, "action": {"message": "nurture"}, "conditions": ["rich"]}],
            },
        ),
        ("/admin/v1/journeys/from-template", {"template": "x", "coupon_template_id": 1}),
        ("/admin/v1/campaigns", {"segment_id": 1, "action": []}),
        ("/admin/v1/campaigns", {"segment_id": 1, "action": {"points": 5}}),
        ("/admin/v1/campaigns", {"segment_id": 1, "action": {"message": "nope"}}),
        ("/admin/v1/campaigns", {"segment_id": 1, "action": {"issue_coupon": True}}),
        (
            "/admin/v1/segments",
            {"name": "s", "rule": {"field": "purchase_count", "op": "=", "value": 10**30}},
        ),
        (
            "/admin/v1/segments",
            {"name": "s", "rule": {"field": "join_date", "op": "=", "value": "2026-13-01"}},
        ),
        (
            "/admin/v1/segments",
            {"name": "s", "rule": {"field": "bought_sku", "op": "=", "value": "A", "days": 0}},
        ),
        ("/admin/v1/segments/preview", {"rule": {"not": {"not": {"all": [{}]}}}}),
    ],
)
def test_bad_input_is_a_clear_422_never_a_500(client, admin_headers, path, body):
    segment(client, admin_headers)
    response = client.post(path, json=body, headers=admin_headers)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["code"]
