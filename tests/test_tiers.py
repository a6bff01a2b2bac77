"""Member tiers through HTTP: the ladder, the crossing purchase, keep and review, refunds,
overrides, merges, the upgrade gift and message once, the birthday gift and the audit."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.audit.services import run_audit
from app.common.clock import utcnow
from app.coupons.models import Coupon
from app.db import unit_of_work
from app.extensions import db
from app.intel.models import MemberStats
from app.outbox.models import OutboxMessage
from app.points.services import balance_of
from app.tiers.jobs import reevaluate_tiers, review_tiers
from app.tiers.models import MemberTier
from pos_adapter.client import PosClient
from tests.conftest import requires_postgres
from tests.platform_kit import run_concurrently
from tests.pos_support import refund, sale, signed_client, statuses

_ids = itertools.count(1)


def ladder(**extra):
    body = {
        "basis": "payer_fen_12m",
        "tiers": [
            {"code": "NORMAL", "name": "普通会员", "threshold": 0, "earn_multiplier_pct": 100},
            {"code": "VIP", "name": "VIP会员", "threshold": 100_000, "earn_multiplier_pct": 150},
            {"code": "SVIP", "name": "至尊VIP", "threshold": 300_000, "earn_multiplier_pct": 200},
        ],
    }
    body.update(extra)
    return body


def put_ladder(client, headers, body=None):
    response = client.put("/admin/v1/tiers", json=body or ladder(), headers=headers)
    assert response.status_code == 200, response.get_json()
    if response.get_json()["reevaluation"]["state"] != "done":  # queued on a real Redis
        reevaluate_tiers()
    return response.get_json()


def template(client, headers, name="升级礼 满100减20") -> int:
    response = client.post(
        "/admin/v1/coupon-templates",
        json={
            "name": name,
            "kind": "cash_off",
            "value_fen": 2000,
            "threshold_fen": 10000,
            "valid_days": 30,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture
def till(client, admin_headers, store):
    return signed_client(client, admin_headers, "SH001")


def enrol(till, phone="13700000100") -> int:
    response = till.identify(phone=phone, register=True, consent=True)
    assert response.status == 200, response.json
    return response.json["member_id"]


def buy(till, member_id, paid_fen):
    sale_id = f"S-{next(_ids)}"
    assert statuses(
        till.send_events([sale(sale_id, paid_fen, member={"member_id": member_id})])
    ) == ["accepted"]
    return sale_id


def tier_of(client, headers, member_id):
    response = client.get(f"/admin/v1/members/{member_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["tier"]


def test_the_ladder_is_replaced_whole_and_read_back(client, admin_headers):
    assert client.get("/admin/v1/tiers", headers=admin_headers).get_json()["tiers"] == []
    got = put_ladder(client, admin_headers)
    assert [t["code"] for t in got["tiers"]] == ["NORMAL", "VIP", "SVIP"]
    assert [t["rank"] for t in got["tiers"]] == [1, 2, 3]
    assert got["keep_months"] == 12 and got["review_max_steps"] == 1
    assert got["reevaluation"]["state"] in ("pending", "done")  # queued, or run in-process
    read = client.get("/admin/v1/tiers", headers=admin_headers).get_json()
    assert read["tiers"] == got["tiers"] and read["basis"] == "payer_fen_12m"
    assert read["reevaluation"]["state"] == "done"


@pytest.mark.parametrize(
    ("tiers", "code"),
    [
        ([{"code": "A", "name": "a", "threshold": 10}], "INVALID_LADDER"),  # no threshold 0
        (
            [
                {"code": "A", "name": "a", "threshold": 0},
                {"code": "A", "name": "b", "threshold": 5},
            ],
            "INVALID_LADDER",
        ),
        (
            [
                {"code": "A", "name": "a", "threshold": 0, "rank": 2},
                {"code": "B", "name": "b", "threshold": 5, "rank": 1},
            ],
            "INVALID_LADDER",
        ),
        (
            [{"code": "A", "name": "a", "threshold": 0, "earn_multiplier_pct": 50}],
            "VALIDATION_ERROR",
        ),
        (
            [{"code": "A", "name": "a", "threshold": 0, "upgrade_coupon_template_id": 999}],
            "TEMPLATE_NOT_FOUND",
        ),
    ],
)
def test_a_bad_ladder_is_refused_and_nothing_changes(client, admin_headers, tiers, code):
    put_ladder(client, admin_headers)
    response = client.put(
        "/admin/v1/tiers", json={"basis": "growth", "tiers": tiers}, headers=admin_headers
    )
    assert response.status_code == 422 and response.get_json()["error"]["code"] == code
    assert client.get("/admin/v1/tiers", headers=admin_headers).get_json()["basis"] == (
        "payer_fen_12m"
    )


def test_the_crossing_purchase_earns_at_the_old_multiplier_and_the_next_at_the_new(
    client, admin_headers, till
):
    gift = template(client, admin_headers)
    body = ladder()
    body["tiers"][1]["upgrade_coupon_template_id"] = gift
    put_ladder(client, admin_headers, body)
    member_id = enrol(till)
    assert till.identify(phone="13700000100").json["tier"]["code"] == "NORMAL"

    buy(till, member_id, 60_000)  # 600 points at ×1
    buy(till, member_id, 50_000)  # crosses 1000 yuan: still ×1, then VIP
    assert balance_of(member_id) == 1100
    seen = till.identify(phone="13700000100").json["tier"]
    assert seen["code"] == "VIP" and seen["name"] == "VIP会员"
    assert seen["next"] == {
        "code": "SVIP",
        "name": "至尊VIP",
        "threshold": 300_000,
        "needed": 190_000,
    }
    buy(till, member_id, 10_000)  # ×1.5 now
    assert balance_of(member_id) == 1100 + 150

    detail = client.get(f"/admin/v1/members/{member_id}/tier", headers=admin_headers).get_json()
    assert detail["payer_fen_12m"] == 120_000 and detail["purchases_12m"] == 3
    assert detail["growth"] == 1250
    assert [(h["old_code"], h["new_code"], h["reason"]) for h in detail["history"]] == [
        ("NORMAL", "VIP", "upgrade")
    ]
    coupons = db.session.scalars(select(Coupon).where(Coupon.owner_id == member_id)).all()
    assert [c.template_id for c in coupons] == [gift]
    messages = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "tier_changed")
    ).all()
    assert len(messages) == 1
    assert messages[0].payload["tier"] == {"code": "VIP", "name": "VIP会员"}
    assert messages[0].payload["gift"]["coupon_code"] == coupons[0].code
    assert tier_of(client, admin_headers, member_id)["code"] == "VIP"
    assert run_audit(["tiers"])["tiers"] == []


def test_in_one_upload_the_crossing_purchase_lifts_the_next_and_stats_are_kept_once(
    client, admin_headers, till
):
    from app.common.hooks import PURCHASES_APPLIED

    put_ladder(client, admin_headers)
    member_id = enrol(till)
    calls: list[int] = []

    def count(items) -> None:
        calls.append(len(items))

    PURCHASES_APPLIED.register(count)
    try:
        sales = [
            sale(f"ONE-{n}", paid, member={"member_id": member_id})
            for n, paid in enumerate((60_000, 50_000, 10_000))
        ]
        assert statuses(till.send_events(sales)) == ["accepted"] * 3
    finally:
        PURCHASES_APPLIED.unregister(count)
    # three waves (one member), as three uploads: ×1, ×1 (crosses into VIP), then ×1.5
    assert balance_of(member_id) == 600 + 500 + 150
    assert tier_of(client, admin_headers, member_id)["code"] == "VIP"
    assert calls == [3]  # the recording listeners (stats, messages) run once for the batch
    stats = db.session.get(MemberStats, member_id)
    assert (stats.purchase_count, stats.payer_fen_total) == (3, 120_000)
    assert run_audit(["tiers"])["tiers"] == []


def test_store_rules_and_the_tier_compose_in_one_order_floored_once(client, admin_headers, till):
    put_ladder(client, admin_headers)
    member_id = enrol(till)
    buy(till, member_id, 100_000)  # VIP (×1.5) from now on: 1000 points
    now = utcnow()
    rule = client.post(
        "/admin/v1/points/multiplier-rules",
        json={
            "name": "双倍积分",
            "percent": 200,
            "store": "SH001",
            "starts_at": (now - timedelta(days=30)).isoformat(),
            "ends_at": (now + timedelta(days=30)).isoformat(),
        },
        headers=admin_headers,
    )
    assert rule.status_code == 201, rule.get_json()
    buy(till, member_id, 333)  # store rule, then tier: 3.33 × 2 × 1.5 = 9.99, floored once: 9
    assert balance_of(member_id) == 1000 + 9


def test_keep_then_demote_one_step_per_review(client, admin_headers, till):
    put_ladder(client, admin_headers)
    member_id = enrol(till)
    buy(till, member_id, 300_000)
    assert tier_of(client, admin_headers, member_id)["code"] == "SVIP"
    now = utcnow()
    review_tiers(now=now + timedelta(days=200))  # within the keep period: kept
    assert tier_of(client, admin_headers, member_id)["code"] == "SVIP"
    later = now + timedelta(days=400)  # keep over, the purchase left the 12-month window
    review_tiers(now=later)
    detail = client.get(f"/admin/v1/members/{member_id}/tier", headers=admin_headers).get_json()
    assert detail["tier"]["code"] == "VIP" and detail["payer_fen_12m"] == 0  # one step only
    review_tiers(now=later + timedelta(days=1))  # a new keep period on the lower tier
    assert tier_of(client, admin_headers, member_id)["code"] == "VIP"
    review_tiers(now=later + timedelta(days=400))
    assert tier_of(client, admin_headers, member_id)["code"] == "NORMAL"
    reasons = [
        h["reason"]
        for h in client.get(
            f"/admin/v1/members/{member_id}/tier", headers=admin_headers
        ).get_json()["history"]
    ]
    assert reasons == ["review", "review", "upgrade"]
    messages = db.session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "tier_changed")
    )
    assert messages == 3


def test_a_member_still_qualifying_after_the_keep_period_is_kept_another_period(
    client, admin_headers, till
):
    put_ladder(client, admin_headers)
    member_id = enrol(till)
    buy(till, member_id, 150_000)
    with unit_of_work():  # the keep period has just ended; the basis still earns VIP
        db.session.execute(update(MemberTier).values(keep_until=utcnow() - timedelta(days=1)))
    review_tiers(now=utcnow())
    row = db.session.get(MemberTier, member_id)
    assert row.tier_code == "VIP" and row.keep_until > utcnow() + timedelta(days=300)


def test_refunds_lower_the_basis_but_never_demote_before_the_review(client, admin_headers, till):
    put_ladder(client, admin_headers)
    member_id = enrol(till)
    first = buy(till, member_id, 80_000)
    buy(till, member_id, 40_000)
    assert tier_of(client, admin_headers, member_id)["code"] == "VIP"
    assert statuses(till.send_events([refund("R-1", first, 80_000)])) == ["accepted"]
    detail = client.get(f"/admin/v1/members/{member_id}/tier", headers=admin_headers).get_json()
    assert detail["tier"]["code"] == "VIP"
    assert detail["payer_fen_12m"] == 40_000 and detail["purchases_12m"] == 1
    assert detail["tier"]["next"]["needed"] == 260_000
    review_tiers(now=utcnow() + timedelta(days=1))  # within the keep period
    assert tier_of(client, admin_headers, member_id)["code"] == "VIP"
    assert run_audit(["tiers"])["tiers"] == []
    review_tiers(now=utcnow() + timedelta(days=370))
    assert tier_of(client, admin_headers, member_id)["code"] == "NORMAL"


def test_hq_override_applies_until_its_expiry_and_is_audited(client, admin_headers, till):
    put_ladder(client, admin_headers)
    member_id = enrol(till)
    url = f"/admin/v1/members/{member_id}/tier"
    no_expiry = client.put(url, json={"code": "SVIP", "reason": "KOL"}, headers=admin_headers)
    assert no_expiry.status_code == 422
    assert no_expiry.get_json()["error"]["code"] == "INVALID_EXPIRY"
    unknown = client.put(
        url,
        json={
            "code": "GOLD",
            "reason": "x",
            "expires_at": (utcnow() + timedelta(days=1)).isoformat(),
        },
        headers=admin_headers,
    )
    assert unknown.get_json()["error"]["code"] == "TIER_NOT_FOUND"

    until = utcnow() + timedelta(days=10)
    response = client.put(
        url,
        json={"code": "SVIP", "reason": "品牌大使", "expires_at": until.isoformat()},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["tier"]["code"] == "SVIP" and body["earned_code"] == "NORMAL"
    assert body["override"]["reason"] == "品牌大使" and body["override"]["by"] == "test-admin"
    assert body["history"][0]["actor"] == "test-admin" and body["history"][0]["note"] == "品牌大使"
    buy(till, member_id, 10_000)  # ×2 under the override
    assert balance_of(member_id) == 200
    assert till.identify(phone="13700000100").json["tier"]["code"] == "SVIP"

    review_tiers(now=until + timedelta(minutes=1))
    after = client.get(url, headers=admin_headers).get_json()
    assert after["tier"]["code"] == "NORMAL" and after["override"] is None
    assert [h["reason"] for h in after["history"]][:2] == ["review", "manual"]
    assert run_audit(["tiers"])["tiers"] == []


def test_changing_the_ladder_reevaluates_without_demoting_within_the_keep_period(
    client, admin_headers, till
):
    put_ladder(client, admin_headers)
    a, b = enrol(till, "13700000101"), enrol(till, "13700000102")
    buy(till, a, 120_000)
    buy(till, b, 60_000)
    lower = ladder()
    lower["tiers"][1]["threshold"] = 50_000  # VIP within reach
    lower["tiers"][2]["threshold"] = 500_000
    got = put_ladder(client, admin_headers, lower)
    got = client.get("/admin/v1/tiers", headers=admin_headers).get_json()
    assert got["reevaluation"]["state"] == "done" and got["reevaluation"]["done"] == 2
    assert tier_of(client, admin_headers, b)["code"] == "VIP"
    higher = ladder()
    higher["tiers"][1]["threshold"] = 200_000
    higher["tiers"][2]["threshold"] = 400_000
    put_ladder(client, admin_headers, higher)
    assert tier_of(client, admin_headers, a)["code"] == "VIP"  # kept: within its keep period
    renamed = ladder()
    renamed["tiers"][1]["code"] = "GOLD"
    put_ladder(client, admin_headers, renamed)  # a removed code moves to the same position
    assert tier_of(client, admin_headers, a)["code"] == "GOLD"
    assert run_audit(["tiers"])["tiers"] == []


def test_growth_basis_counts_points_earned_and_ignores_spending(client, admin_headers, till):
    body = ladder(basis="growth")
    body["tiers"][1]["threshold"] = 500
    put_ladder(client, admin_headers, body)
    member_id = enrol(till)
    buy(till, member_id, 50_000)
    tier = tier_of(client, admin_headers, member_id)
    assert tier["code"] == "VIP" and tier["basis"] == "growth" and tier["value"] == 500


def test_the_mini_program_and_clerk_views_carry_the_tier(client, admin_headers, till):
    from miniprogram_api.auth import issue_member_token

    put_ladder(client, admin_headers)
    member_id = enrol(till)
    buy(till, member_id, 100_000)
    token = issue_member_token(member_id, "wechat")
    me = client.get("/mp/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["tier"]["code"] == "VIP" and me["tier"]["next"]["needed"] == 200_000
    from app.clerks.services import member_view

    class Ctx:
        store_id = till_store_id()
        clerk_id = None

    assert member_view(Ctx(), member_id)["tier"]["code"] == "VIP"


def till_store_id() -> int:
    from app.stores.models import Store

    return db.session.scalar(select(Store.id).where(Store.code == "SH001"))


def test_the_birthday_job_gives_the_tiers_birthday_gift(client, admin_headers, till):
    from app.members.birthday import send_birthday_coupons
    from app.members.models import Member

    gift = template(client, admin_headers, "VIP生日礼")
    body = ladder()
    body["tiers"][1]["birthday_coupon_template_id"] = gift
    put_ladder(client, admin_headers, body)
    member_id = enrol(till)
    buy(till, member_id, 100_000)
    now = utcnow()
    with unit_of_work():
        db.session.get(Member, member_id).birthday = now.date().replace(year=1990)
    from app.common.clock import SHANGHAI

    with unit_of_work():
        db.session.get(Member, member_id).birthday = (
            now.astimezone(SHANGHAI).date().replace(year=1990)
        )
    send_birthday_coupons(now=now)
    send_birthday_coupons(now=now)  # once a year
    coupons = db.session.scalars(
        select(Coupon).where(Coupon.owner_id == member_id, Coupon.template_id == gift)
    ).all()
    assert len(coupons) == 1
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "birthday"))
    assert message.payload["tier_gift"]["code"] == coupons[0].code


def test_the_audit_finds_a_tier_that_does_not_match_its_basis(client, admin_headers, till):
    put_ladder(client, admin_headers)
    member_id = enrol(till)
    buy(till, member_id, 120_000)
    with unit_of_work():
        db.session.execute(update(MemberTier).values(tier_code="NORMAL"))
    found = run_audit(["tiers"])["tiers"]
    assert [d.check for d in found] == ["tier_below_basis"]
    with unit_of_work():
        db.session.execute(update(MemberTier).values(tier_code="VIP", payer_fen_12m=1))
    assert "tier_basis_differs_from_months" in [d.check for d in run_audit(["tiers"])["tiers"]]


@requires_postgres
def test_concurrent_crossing_purchases_upgrade_once_with_one_coupon_and_one_message(
    app, client, admin_headers, till
):
    gift = template(client, admin_headers)
    body = ladder()
    body["tiers"][1]["upgrade_coupon_template_id"] = gift
    put_ladder(client, admin_headers, body)
    member_id = enrol(till)
    buy(till, member_id, 90_000)
    tills = [signed_client(client, admin_headers, "SH001") for _ in range(4)]
    index = itertools.count()

    def pay():
        i = next(index)
        own = PosClient.for_flask(
            app.test_client(), terminal_id=tills[i].terminal_id, secret=tills[i].secret
        )
        response = own.send_events([sale(f"C-{i}", 20_000, member={"member_id": member_id})])
        return statuses(response)

    results = run_concurrently(app, 4, pay)
    assert results == [["accepted"]] * 4, results
    coupons = db.session.scalar(
        select(func.count()).select_from(Coupon).where(Coupon.owner_id == member_id)
    )
    messages = db.session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "tier_changed")
    )
    assert (coupons, messages) == (1, 1)
    detail = client.get(f"/admin/v1/members/{member_id}/tier", headers=admin_headers).get_json()
    assert detail["payer_fen_12m"] == 170_000 and detail["tier"]["code"] == "VIP"
    # exactly one of the four crossed at ×1; the ones after it earned ×1.5
    assert balance_of(member_id) in {900 + 200 * k + 300 * (4 - k) for k in range(1, 5)}
    assert run_audit(["tiers"])["tiers"] == []


@pytest.fixture
def sandbox_app(make_app, tmp_path):
    from app.platforms.sandbox import enable_sandbox

    application = make_app()
    enable_sandbox(application, tmp_path / "sandbox")
    yield application
    for name in ("wechat", "alipay"):
        application.config["SANDBOX"][name].stop()


def test_a_merge_keeps_the_higher_tier_and_sums_the_basis(sandbox_app, admin_headers):
    with sandbox_app.app_context():
        client = sandbox_app.test_client()
        assert (
            client.post(
                "/admin/v1/stores", json={"code": "SH001", "name": "s"}, headers=admin_headers
            ).status_code
            == 201
        )
        put_ladder(client, admin_headers)
        till = signed_client(client, admin_headers, "SH001")
        holder = enrol(till, "13812345678")
        buy(till, holder, 30_000)
        login = client.post("/mp/v1/wechat/login", json={"code": "sandbox-merge"}).get_json()
        payer = login["member"]["id"]
        buy(till, payer, 150_000)
        assert tier_of(client, admin_headers, payer)["code"] == "VIP"
        bound = client.post(
            "/mp/v1/wechat/phone",
            json={"code": "sandbox-phone-13812345678"},
            headers={"Authorization": f"Bearer {login['token']}"},
        )
        assert bound.status_code == 200, bound.get_json()
        detail = client.get(f"/admin/v1/members/{holder}/tier", headers=admin_headers).get_json()
        assert detail["tier"]["code"] == "VIP"  # the higher of the two
        assert detail["payer_fen_12m"] == 180_000 and detail["purchases_12m"] == 2
        assert detail["history"][0]["reason"] == "merge"
        me = client.get("/mp/v1/me", headers={"Authorization": f"Bearer {login['token']}"})
        assert me.get_json()["id"] == holder and me.get_json()["tier"]["code"] == "VIP"
        assert db.session.get(MemberTier, payer) is None
        assert run_audit(["tiers"])["tiers"] == []


def test_rebuilding_the_basis_from_purchases_places_members_with_history(
    app, client, admin_headers, till
):
    from sqlalchemy import delete

    from app.tiers.models import MemberTierMonth

    member_id = enrol(till)
    first = buy(till, member_id, 80_000)
    buy(till, member_id, 70_000)
    assert statuses(till.send_events([refund("R-9", first, 10_000)])) == ["accepted"]
    with unit_of_work():  # as if the history predated tiers
        db.session.execute(delete(MemberTierMonth))
        db.session.execute(delete(MemberTier))
    put_ladder(client, admin_headers)
    assert tier_of(client, admin_headers, member_id)["code"] == "NORMAL"
    result = app.test_cli_runner().invoke(args=["tiers", "rebuild-basis"])
    assert result.exit_code == 0, result.output
    assert "1 members" in result.output
    detail = client.get(f"/admin/v1/members/{member_id}/tier", headers=admin_headers).get_json()
    assert detail["tier"]["code"] == "VIP"
    assert (detail["payer_fen_12m"], detail["purchases_12m"]) == (140_000, 2)
    assert detail["growth"] == 1400
    assert run_audit(["tiers"])["tiers"] == []


def test_the_openapi_document_describes_tiers(client):
    spec = client.get("/openapi.json").get_json()
    assert (
        "/admin/v1/tiers" in spec["paths"] and "/admin/v1/members/{member_id}/tier" in spec["paths"]
    )
    me = spec["components"]["schemas"]["Me"]["properties"]["tier"]
    assert me["type"] == "object" and "needed" in me["description"]


def test_a_payment_refund_in_order_money_lowers_the_basis_by_the_payers_share(
    client, admin_headers
):
    from app.members.services import create_member
    from app.points.purchases import PurchaseIn, record_purchases, record_refund

    put_ladder(client, admin_headers)
    with unit_of_work():
        member_id = create_member(source="test", phone="13700000190").id
    with unit_of_work():  # an order of 100 yuan, 80 of it the payer's own money
        (out,) = record_purchases(
            [PurchaseIn("wechat", "4200-1", member_id, None, 8_000, utcnow(), total_fen=10_000)]
        )
    with unit_of_work():
        record_refund(out.purchase_id, refund_key="r1", refund_fen=5_000, occurred_at=utcnow())
    detail = client.get(f"/admin/v1/members/{member_id}/tier", headers=admin_headers).get_json()
    assert (detail["payer_fen_12m"], detail["purchases_12m"]) == (4_000, 1)
    with unit_of_work():
        record_refund(out.purchase_id, refund_key="r2", refund_fen=5_000, occurred_at=utcnow())
    detail = client.get(f"/admin/v1/members/{member_id}/tier", headers=admin_headers).get_json()
    assert (detail["payer_fen_12m"], detail["purchases_12m"]) == (0, 0)
    assert run_audit(["tiers"])["tiers"] == []
