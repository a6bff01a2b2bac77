"""The console in a real browser (Playwright driving the system's Chromium): each role's main
tasks, its data scope and phone masking, at a 1280-px laptop and a 768-px tablet width.

Skipped, with the reason, where there is no Chromium at ``/usr/bin/chromium`` (``.ci/run``
installs it). Screenshots go to ``tests/artifacts/`` (not committed).
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.extensions import db
from app.points.services import balance_of
from app.stores.models import Clerk
from app.tags import catalog
from app.tiers.services import ladder_view
from tests.console_scene import PASSWORD, build_scene

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no browser: install Chromium at /usr/bin/chromium (apt-get install chromium) "
    "to run the console's browser tests",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server(app) -> Iterator[str]:
    """The app on a free loopback port, against the test database."""
    httpd, thread, base = serve(app)
    yield base
    httpd.shutdown()
    thread.join(5)


@pytest.fixture
def scene():
    return build_scene()


def serve(application) -> tuple[object, threading.Thread, str]:
    httpd = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread, f"http://127.0.0.1:{httpd.server_port}"


def open_as(browser, base: str, username: str, *, width: int = 1280, password: str = PASSWORD):
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{base}/console/")
    assert "/console/login" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/$"))
    return page


def read(query):
    """Read in the test's own session, then end its transaction: on SQLite an open one would
    keep the server's writes waiting."""
    db.session.expire_all()
    try:
        return query()
    finally:
        db.session.rollback()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def fits(page) -> bool:
    """No sideways scrolling of the page itself (wide tables scroll inside their box)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_hq_admin_dashboard_member_points_template_issue_and_clerk(browser, server, scene):
    page = open_as(browser, server, "hq.admin")
    assert page.locator("h1").first.inner_text() == "数据概览"
    assert page.locator("#no-data, .chart").count() >= 1
    shot(page, "hq-admin-dashboard")

    # find a member by part of the phone, open them, adjust points with a reason
    page.click("nav >> text=会员")
    page.fill("input[name=phone_contains]", "0001")
    page.click("#member-search button[type=submit]")
    rows = page.locator("#members tbody tr")
    assert rows.count() == 1
    assert rows.first.locator(".phone").inner_text() == scene.phones["BJ001"]
    rows.first.locator("a").click()
    page.fill("#adjust input[name=points]", "120")
    page.fill("#adjust input[name=reason]", "门店活动补录")
    page.click("#adjust button[type=submit]")
    assert page.locator("#balance").inner_text() == "120"
    assert "门店活动补录" in page.locator("#ledger").inner_text()
    assert read(lambda: balance_of(scene.members["BJ001"])) == 120
    shot(page, "hq-admin-member")

    # create a coupon template and issue it
    page.click("nav >> text=优惠券")
    form = page.locator("#new-template")
    form.locator("input[name=name]").fill("满50减10")
    form.locator("input[name=value_yuan]").fill("10")
    form.locator("input[name=threshold_yuan]").fill("50")
    form.locator("button.primary").click()
    row = page.locator("tr[data-template='满50减10']")
    row.locator("input[name=member_ids]").fill(f"{scene.members['BJ001']}, 999999")
    row.locator("form.issue button").click()
    results = page.locator("#issue-results").inner_text()
    assert "已发放" in results and "MEMBER_NOT_FOUND" in results
    shot(page, "hq-admin-coupons")

    # disable a clerk
    page.click("nav >> text=导购")
    clerk_row = page.locator("tr[data-clerk='clerkbj001']")
    clerk_row.locator("button[value=disable]").click()
    assert "停用" in page.locator("tr[data-clerk='clerkbj001'] .status").inner_text()
    assert read(lambda: db.session.get(Clerk, scene.clerks["BJ001"]).status) == "disabled"
    shot(page, "hq-admin-clerks")
    page.context.close()


def test_store_manager_sees_its_store_only(browser, server, scene):
    page = open_as(browser, server, "store.manager")
    for path in ("members", "stores", "terminals", "clerks"):
        page.goto(f"{server}/console/{path}")
        text = page.locator("main").inner_text()
        assert "BJ001" not in text and "BJ002" not in text, path
    page.goto(f"{server}/console/members")
    assert page.locator("#members tbody tr").count() == 1
    assert page.locator("#members .phone").first.inner_text() == "138****0000"
    assert page.locator("input[name=phone_contains]").count() == 0  # HQ roles only
    response = page.goto(f"{server}/console/members/{scene.members['BJ001']}")
    assert response.status == 404
    assert page.locator("nav >> text=优惠券").count() == 0
    shot(page, "store-manager-members")
    page.context.close()


def test_region_manager_and_analyst_scopes(browser, server, scene):
    page = open_as(browser, server, "region.manager")
    page.goto(f"{server}/console/stores")
    assert sorted(
        page.locator("#stores tbody tr").evaluate_all("rows => rows.map(r => r.dataset.store)")
    ) == ["BJ001", "BJ002"]
    page.context.close()

    page = open_as(browser, server, "hq.analyst")
    page.goto(f"{server}/console/members/{scene.members['SH001']}")
    assert page.locator("#profile .phone").inner_text() == "138****0000"
    assert scene.phones["SH001"] not in page.content()
    assert page.locator("#adjust form").count() == 0  # read-only
    page.context.close()


@pytest.mark.parametrize("width", [1280, 768])
def test_pages_fit_a_laptop_and_a_tablet(browser, server, scene, width):
    page = open_as(browser, server, "hq.admin", width=width)
    for path in (
        "",
        "members",
        f"members/{scene.members['SH001']}",
        "stores",
        "terminals",
        "clerks",
        "tags",
        "coupons",
        "ops",
        "tiers",
        "segments",
        "segments?field=lifecycle&op=%3D&value=new",
        "campaigns",
        "operators",
    ):
        page.goto(f"{server}/console/{path}")
        assert fits(page), (width, path)
    page.goto(f"{server}/console/members/{scene.members['SH001']}")
    shot(page, f"member-{width}px")
    page.context.close()


def test_english_on_request(browser, server, scene):
    page = open_as(browser, server, "hq.admin")
    page.click("text=English")
    assert page.locator("h1").first.inner_text() == "Dashboard"
    page.context.close()


def test_hq_admin_walks_tiers_segments_campaigns_sku_rules_and_operators(browser, server, scene):
    read(lambda: catalog.create_group("口味", exclusive=False, tag_names=["抹茶控"]))
    page = open_as(browser, server, "hq.admin")
    # the tier ladder, edited through the tiers service
    page.click("nav >> text=等级")
    ladder = page.locator("#ladder")
    ladder.locator("input[name=code_0]").fill("STD")
    ladder.locator("input[name=name_0]").fill("普通会员")
    ladder.locator("input[name=threshold_0]").fill("0")
    ladder.locator("input[name=code_1]").fill("GOLD")
    ladder.locator("input[name=name_1]").fill("金卡会员")
    ladder.locator("input[name=threshold_1]").fill("100000")
    ladder.locator("button.primary").click()
    assert page.locator("tr[data-tier=GOLD]").count() == 1
    assert read(lambda: [t["code"] for t in ladder_view()["tiers"]]) == ["STD", "GOLD"]
    shot(page, "hq-admin-tiers")

    # a segment: count live, masked preview, save, export
    page.click("nav >> text=人群")
    page.select_option("#new-segment select[name=field]", "lifecycle")
    page.fill("#new-segment input[name=value]", "new")
    page.click("#count-rule")
    assert page.locator("#live-count").inner_text() == "3"
    phones = page.locator("#preview .phone").all_inner_texts()
    assert len(phones) == 3 and all("****" in p for p in phones)
    page.fill("#save-segment input[name=name]", "新客")
    page.click("#save-segment button")
    assert page.locator("h1").inner_text() == "人群 新客"
    page.click("#exports button.primary")
    assert page.locator("#exports li[data-export]").count() == 1
    shot(page, "hq-admin-segment")

    # a campaign from the segment: dry run count
    page.click("#exports a.button")
    form = page.locator("#new-campaign")
    form.locator("select[name=kind]").select_option("points")
    form.locator("input[name=points]").fill("5")
    form.locator("input[name=reason]").fill("新客礼")
    form.locator("input[name=dry_run]").check()
    form.locator("button.primary").click()
    assert page.locator("[data-count=targeted]").inner_text() == "3"
    assert "试算" in page.locator("#campaign .state").inner_text()
    shot(page, "hq-admin-campaign")

    # a SKU rule in the tag catalog
    page.click("nav >> text=标签")
    page.fill("#new-rule input[name=skus]", "MATCHA-01")
    page.click("#new-rule button")
    assert "MATCHA-01" in page.locator("#rules").inner_text()

    # an operator, created on the console and able to log in
    page.click("nav >> text=操作员")
    form = page.locator("#new-operator")
    form.locator("input[name=username]").fill("sh.new")
    form.locator("input[name=name]").fill("新店长")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("select[name=role]").select_option("store_manager")
    form.locator("select[name=stores]").select_option("SH001")
    form.locator("button.primary").click()
    assert page.locator("tr[data-operator='sh.new']").count() == 1
    shot(page, "hq-admin-operators")
    page.context.close()
    other = open_as(browser, server, "sh.new")
    other.goto(f"{server}/console/members")
    assert other.locator("#members tbody tr").count() == 1
    other.context.close()


def test_scoped_roles_never_reach_the_hq_pages_and_the_analyst_sees_no_full_phone(
    browser, server, scene
):
    page = open_as(browser, server, "region.manager")
    for name in ("等级", "人群", "营销活动", "操作员"):
        assert page.locator(f"nav >> text={name}").count() == 0
    for path in ("tiers", "segments", "campaigns", "operators"):
        assert page.goto(f"{server}/console/{path}").status == 403, path
    page.context.close()

    page = open_as(browser, server, "hq.analyst")
    page.goto(f"{server}/console/segments?field=lifecycle&op=%3D&value=new")
    assert page.locator("#save-segment").count() == 0  # read-only
    assert not any(p in page.content() for p in scene.phones.values())
    assert page.goto(f"{server}/console/operators").status == 403
    page.context.close()


def test_the_readme_dashboard_shows_a_simulated_brand(browser, make_app, tmp_path):
    """``flask demo seed`` and ``simulate``, then the dashboard as HQ sees it. Writes
    ``docs/console-dashboard.png`` (for the README) when it is missing."""
    from app.demo.brand import DEMO_OPERATOR_PASSWORD
    from app.platforms.sandbox import enable_sandbox

    demo = make_app()
    enable_sandbox(demo, tmp_path / "sandbox")
    try:
        with demo.app_context():
            runner = demo.test_cli_runner()
            assert runner.invoke(args=["demo", "seed"]).exit_code == 0
            simulated = runner.invoke(args=["demo", "simulate", "--days", "30"])
            assert simulated.exit_code == 0, simulated.output
            db.session.remove()
        httpd, thread, base = serve(demo)
        try:
            page = open_as(browser, base, "hq.admin", password=DEMO_OPERATOR_PASSWORD)
            dashboard = shot(page, "demo-dashboard")
            assert page.locator("#no-data").count() == 0
            assert page.locator("svg.chart").count() >= 4
            assert page.locator("svg.chart rect").count() > 10  # new members on most days
            # active members are a daily count: the card is the range's last day, and says so
            last_day = page.locator("input[name=to]").input_value()[5:]
            assert last_day in page.locator("#active-members-card").inner_text()
            docs = Path(__file__).parent.parent / "docs" / "console-dashboard.png"
            if not docs.exists():  # committed once, for the README
                docs.parent.mkdir(exist_ok=True)
                shutil.copy(dashboard, docs)
            page.context.close()
        finally:
            httpd.shutdown()
            thread.join(5)
    finally:
        for name in ("wechat", "alipay"):
            demo.config["SANDBOX"][name].stop()
