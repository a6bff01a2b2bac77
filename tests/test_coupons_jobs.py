"""Coupon jobs and commands: expiry, unclaimed gifts back to givers, reminders, demo templates."""

from __future__ import annotations

from datetime import timedelta

from app.common.clock import advance
from app.coupons import services
from app.coupons.jobs import expiry_reminders
from app.db import unit_of_work
from app.extensions import db
from app.members.models import Member
from tests.test_coupons_state_machine import (
    _clock,  # noqa: F401  (the frozen clock fixture)
    coupon,
    issue,
    new_member,
    new_template,
)


def test_flask_coupons_expire_marks_past_coupons_once(app):
    member = new_member()
    short, long = issue(new_template(valid_days=1), member), issue(new_template(), member)
    advance(timedelta(days=1))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["coupons", "expire"])
    assert result.exit_code == 0, result.output
    assert "coupons expired: 1" in result.output
    assert "coupons expired: 0" in runner.invoke(args=["coupons", "expire"]).output
    assert coupon(short).state == "expired" and coupon(long).state == "available"


def test_flask_coupons_return_gifts_gives_unclaimed_gifts_back(app):
    giver = new_member()
    code = issue(new_template(), giver)
    services.create_gift(code, giver)
    advance(timedelta(hours=25))
    result = app.test_cli_runner().invoke(args=["coupons", "return-gifts"])
    assert result.exit_code == 0 and "gifts returned: 1" in result.output
    assert coupon(code).state == "available"


def test_the_reminder_list_holds_coupons_expiring_within_three_days_minus_opt_outs(app):
    keen, quiet = new_member("13800000001"), new_member("13800000002")
    soon = issue(new_template(valid_days=3), keen)
    quiets = issue(new_template(valid_days=3), quiet)
    later = issue(new_template(valid_days=4), keen)
    with unit_of_work():
        db.session.get(Member, quiet).marketing_opt_out = True
    assert [r["code"] for r in expiry_reminders(3)] == [soon]
    everyone = expiry_reminders(3, exclude_opted_out=False)
    assert sorted(r["code"] for r in everyone) == sorted([soon, quiets])
    result = app.test_cli_runner().invoke(args=["coupons", "reminders"])
    assert soon in result.output and "within 3 days: 1" in result.output
    from app.admin.auth import create_admin_token

    headers = {"Authorization": f"Bearer {create_admin_token('ops')}"}
    listed = app.test_client().get("/admin/v1/coupons/expiring?within_days=3", headers=headers)
    assert [c["code"] for c in listed.get_json()["items"]] == [soon]
    advance(timedelta(days=3))
    assert [r["code"] for r in expiry_reminders(3)] == [later]  # the expired one is gone


def test_demo_seed_creates_the_coupon_templates_once_with_a_welcome_coupon(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    assert "coupon template" in first.output
    runner.invoke(args=["demo", "seed"])
    from app.coupons.models import CouponTemplate

    templates = db.session.query(CouponTemplate).all()
    assert len(templates) == 4 and sum(t.welcome for t in templates) == 1
    with unit_of_work():
        welcome = services.issue_welcome_coupon(new_member())
    assert welcome.template.name.startswith("开卡礼")
