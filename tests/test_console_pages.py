"""The console's pages over a test client: login with CSRF and lockout, each role's pages and
scope, masked phones, points adjustment through the same service as the API, languages."""

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.operators.models import WriteAudit
from app.points.services import balance_of
from tests.console_scene import PASSWORD, build_scene


@pytest.fixture
def scene():
    return build_scene()


def login_csrf(client) -> str:
    page = client.get("/console/login")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def log_in(client, username: str, password: str = PASSWORD):
    token = login_csrf(client)
    return client.post(
        "/console/login", data={"username": username, "password": password, "csrf_token": token}
    )


def page_csrf(client, path: str) -> tuple[str, str]:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    html = page.get_data(as_text=True)
    return html, re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_pages_need_a_session_and_login_sets_an_httponly_cookie(client, scene):
    assert client.get("/console/").status_code == 302
    response = log_in(client, "hq.admin")
    assert response.status_code == 302
    cookie = response.headers.getlist("Set-Cookie")
    assert any("hy_console=" in c and "HttpOnly" in c and "SameSite=Lax" in c for c in cookie)
    assert client.get("/console/").status_code == 200


def test_login_without_the_csrf_token_is_refused(client, scene):
    client.get("/console/login")
    response = client.post("/console/login", data={"username": "hq.admin", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/console/").status_code == 302


def test_a_post_without_the_session_csrf_token_changes_nothing(client, scene):
    log_in(client, "hq.admin")
    member = scene.members["SH001"]
    response = client.post(f"/console/members/{member}/points", data={"points": "5", "reason": "x"})
    assert response.status_code == 400
    assert balance_of(member) == 0


def test_wrong_passwords_lock_the_operator_out_as_clerks_are(client, scene):
    for _ in range(5):
        assert log_in(client, "store.manager", "wrong-password").status_code == 401
    locked = log_in(client, "store.manager")
    assert locked.status_code == 403 and "ACCOUNT_LOCKED" in locked.get_data(as_text=True)


def test_logout_ends_the_session(client, scene):
    log_in(client, "hq.admin")
    _html, token = page_csrf(client, "/console/")
    client.post("/console/logout", data={"csrf_token": token})
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize("role", ["hq.admin", "hq.analyst", "region.manager", "store.manager"])
def test_every_page_renders_for_every_role(client, scene, role):
    log_in(client, role)
    for path in (
        "/console/",
        "/console/members",
        "/console/stores",
        "/console/terminals",
        "/console/clerks",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
    hq_status = 200 if role.startswith("hq") else 403
    for path in (
        "/console/tags",
        "/console/coupons",
        "/console/ops",
        "/console/tiers",
        "/console/segments",
        "/console/campaigns",
    ):
        assert client.get(path).status_code == hq_status, path
    admin_status = 200 if role == "hq.admin" else 403
    assert client.get("/console/operators").status_code == admin_status


def test_the_dashboard_draws_the_kpi_charts_and_refuses_a_reversed_range(client, scene):
    log_in(client, "hq.admin")
    html = client.get("/console/?from=2026-01-01&to=2026-01-31&store=SH001").get_data(as_text=True)
    assert 'id="no-data"' not in html  # the reports service answers, so the charts are drawn
    assert "<svg" in html
    assert client.get("/console/?from=2026-02-01&to=2026-01-01").status_code == 422


def test_a_store_manager_sees_only_its_store_on_every_page(client, scene):
    log_in(client, "store.manager")
    for path in ("/console/members", "/console/stores", "/console/terminals", "/console/clerks"):
        html = client.get(path).get_data(as_text=True)
        assert "BJ001" not in html and "BJ002" not in html, path
    assert client.get(f"/console/members/{scene.members['BJ001']}").status_code == 404
    assert client.get("/console/members?store=BJ001").status_code == 404
    assert client.get("/console/?store=BJ001").status_code == 404
    own = client.get(f"/console/members/{scene.members['SH001']}").get_data(as_text=True)
    assert "138****0000" in own and scene.phones["SH001"] not in own


def test_the_analyst_sees_every_member_with_masked_phones_and_cannot_write(client, scene):
    log_in(client, "hq.analyst")
    html = client.get("/console/members?phone_contains=13800").get_data(as_text=True)
    assert html.count("138****") == 3
    assert not any(phone in html for phone in scene.phones.values())
    _page, token = page_csrf(client, f"/console/members/{scene.members['SH001']}")
    response = client.post(
        f"/console/members/{scene.members['SH001']}/points",
        data={"points": "5", "reason": "x", "csrf_token": token},
    )
    assert response.status_code == 302 and balance_of(scene.members["SH001"]) == 0


def test_points_are_adjusted_with_a_reason_and_audited(client, scene):
    log_in(client, "store.manager")
    member = scene.members["SH001"]
    _html, token = page_csrf(client, f"/console/members/{member}")
    data = {"points": "30", "reason": "补录积分", "key": "k1", "csrf_token": token}
    assert client.post(f"/console/members/{member}/points", data=data).status_code == 302
    assert client.post(f"/console/members/{member}/points", data=data).status_code == 302
    assert balance_of(member) == 30  # the form's key makes a double submit harmless
    no_reason = {**data, "reason": "", "key": "k2"}
    client.post(f"/console/members/{member}/points", data=no_reason)
    assert balance_of(member) == 30
    rows = db.session.scalars(
        select(WriteAudit).where(WriteAudit.endpoint != "console.login").order_by(WriteAudit.id)
    ).all()
    assert rows[0].actor == "operator:store.manager" and rows[0].role == "store_manager"
    assert rows[0].path == f"/console/members/{member}/points"


def test_the_console_speaks_chinese_by_default_and_english_on_request(client, scene):
    log_in(client, "hq.admin")
    assert "会员" in client.get("/console/members").get_data(as_text=True)
    client.get("/console/lang/en")
    assert "Members" in client.get("/console/members").get_data(as_text=True)


def test_the_dashboard_charts_draw_the_kpi_days_shape(app):
    from app.console.dashboard import charts, totals

    days = [
        {
            "date": f"2026-11-{d:02d}",
            "new_members": d,
            "new_members_by_channel": {"payment": d, "pos": 1, "miniprogram": 0, "gift": 0},
            "active_members": 10 * d,
            "repurchase_rate": 0.1 * d,
            "returning_sales_share": 0.5,
            "member_sales_share": 0.6,
            "coupon_redemption_online": 2,
            "coupon_redemption_offline": 3,
            "points_issued": 100 * d,
            "points_spent": 20,
            "points_expired": 0,
        }
        for d in (1, 2, 3)
    ]
    with app.test_request_context("/console/"):
        drawn = charts(days)
    assert len(drawn) == 6
    svg = "".join(str(chart) for _title, chart in drawn)
    assert svg.count("<svg") == 6 and svg.count("<rect") == 6 and "<polyline" in svg
    assert "11-02" in svg and "<script" not in svg
    assert totals(days) == {
        "new_members": 6,
        "active_members": 30,  # the last day's (a daily count does not add up over days)
        "active_members_day": "11-03",
        "points_issued": 600,
        "points_spent": 60,
    }


def test_the_message_catalog_translates_every_console_string_and_is_compiled(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    root = Path(__file__).parent.parent
    pot = tmp_path / "messages.pot"
    extract = ["extract", "-F", "babel.cfg", "-k", "_l", "-o", str(pot), "."]
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", *extract],
        cwd=root,
        check=True,
        capture_output=True,
    )
    folder = root / "app" / "translations" / "zh_Hans_CN" / "LC_MESSAGES"
    with pot.open("rb") as a, (folder / "messages.po").open("rb") as b:
        wanted = {m.id for m in read_po(a) if m.id}
        po = {m.id: m.string for m in read_po(b) if m.id}
    with (folder / "messages.mo").open("rb") as c:
        mo = {m.id: m.string for m in read_mo(c) if m.id}
    assert sorted(wanted - {k for k, v in po.items() if v}) == []
    assert mo == {k: v for k, v in po.items() if k in wanted}


def test_a_small_axis_keeps_distinct_tick_labels(app):
    from app.console.charts import line_chart

    svg = str(line_chart(["11-01", "11-02"], {"a": [0, 1]}))
    ticks = [part.split("<")[0] for part in svg.split('text-anchor="end">')[1:]]
    assert ticks == ["1", "0.75", "0.5", "0.25", "0"]
