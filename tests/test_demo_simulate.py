"""flask demo seed / simulate: a demo brand with console operators per role, and weeks of
activity sent through the real entrypoints, the same for the same seed."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from app.coupons.models import Coupon
from app.extensions import db
from app.members.models import Member
from app.operators.models import Operator
from app.platforms.sandbox import enable_sandbox
from app.points.models import PointsEntry
from app.tags.models import MemberTagEvent
from tests.conftest import _truncate_all


@pytest.fixture
def sandbox_app(make_app, tmp_path):
    application = make_app()
    enable_sandbox(application, tmp_path / "sandbox")
    yield application
    for name in ("wechat", "alipay"):
        application.config["SANDBOX"][name].stop()


def picture() -> dict:
    members = dict(
        db.session.execute(select(Member.source, func.count()).group_by(Member.source)).all()
    )
    return {
        "members": members,
        "points": db.session.scalar(select(func.sum(PointsEntry.points))),
        "entries": db.session.scalar(select(func.count()).select_from(PointsEntry)),
        "coupons": dict(
            db.session.execute(select(Coupon.state, func.count()).group_by(Coupon.state)).all()
        ),
        "tag_events": db.session.scalar(select(func.count()).select_from(MemberTagEvent)),
    }


def run(app, days: int, seed: int) -> tuple[dict, str]:
    with app.app_context():
        runner = app.test_cli_runner()
        seeded = runner.invoke(args=["demo", "seed"])
        assert seeded.exit_code == 0, seeded.output
        result = runner.invoke(args=["demo", "simulate", "--days", str(days), "--seed", str(seed)])
        assert result.exit_code == 0, result.output
        found = picture()
        db.session.remove()
        _truncate_all(db)
    return found, result.output


def test_the_demo_seed_creates_one_console_operator_per_role(app):
    from app.demo.brand import seed_demo_brand

    seed_demo_brand()
    roles = dict(db.session.execute(select(Operator.username, Operator.role)).all())
    assert sorted(roles.values()) == ["hq_admin", "hq_analyst", "region_manager", "store_manager"]
    logins = app.test_cli_runner().invoke(args=["demo", "console-logins"]).output
    assert "hq.admin / demo-console-pass" in logins and "(stores HZ001)" in logins


def test_a_simulated_fortnight_goes_through_every_entrypoint_the_same_for_a_seed(sandbox_app):
    first, output = run(sandbox_app, 14, seed=7)
    assert {"wechat_pay", "pos", "wechat_miniprogram"} <= set(first["members"])
    assert first["points"] > 0 and first["entries"] > 50
    assert first["coupons"].get("available", 0) > 0 and first["coupons"].get("redeemed", 0) > 0
    assert first["tag_events"] > 0
    for kind in ("wechat_payment_200", "pos_sale_accepted", "mp_login_200", "pos_redeem_accepted"):
        assert kind in output
    assert "rejected" not in output
    again, _ = run(sandbox_app, 14, seed=7)
    assert again == first
    other, _ = run(sandbox_app, 14, seed=8)
    assert other != first


def test_simulate_needs_the_sandbox(app):
    from app.demo.brand import seed_demo_brand

    seed_demo_brand()
    result = app.test_cli_runner().invoke(args=["demo", "simulate", "--days", "1"])
    assert result.exit_code != 0 and "sandbox" in result.output


def test_the_simulated_brand_spends_points_and_coupons_and_its_kpis_hold_together(sandbox_app):
    """The dashboard's figures over a simulated fortnight: every till spend goes through (a
    refused one is counted by its error code), points are spent every day, coupons lapse and
    count as ended, and no day has more member sales than sales."""
    from datetime import timedelta

    from app.common.clock import SHANGHAI, utcnow
    from app.points.models import PointsHold
    from app.reports.services import kpis

    with sandbox_app.app_context():
        runner = sandbox_app.test_cli_runner()
        assert runner.invoke(args=["demo", "seed"]).exit_code == 0
        result = runner.invoke(args=["demo", "simulate", "--days", "14", "--seed", "3"])
        assert result.exit_code == 0, result.output
        assert "pos_points_hold_201" in result.output and "pos_hold_201" in result.output
        assert "_409" not in result.output and "_403" not in result.output
        held = dict(
            db.session.execute(
                select(PointsHold.state, func.count()).group_by(PointsHold.state)
            ).all()
        )
        assert held.get("captured", 0) > 0 and "held" not in held
        today = utcnow().astimezone(SHANGHAI).date()
        days = kpis(today - timedelta(days=14), today - timedelta(days=1))["days"]
        assert len(days) == 14 and all(d["purchases"] > 0 for d in days)
        for d in days:
            assert 0 <= d["returning_sales_share"] <= d["member_sales_share"] <= 1, d
            assert d["points_spent"] > 0, d
        ended = [d for d in days if d["coupon_redemption_offline"] is not None]
        assert any(d["coupon_redemption_offline"] < 1 for d in ended)  # some coupons expired
        mondays = [d for d in days if date.fromisoformat(d["date"]).weekday() == 0]
        assert all(d["coupon_redemption_offline"] for d in mondays)  # till redemptions each week
        db.session.remove()
        _truncate_all(db)
