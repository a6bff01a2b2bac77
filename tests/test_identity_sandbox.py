"""The development sandbox: offline stand-ins and keys, never in testing or production."""

from __future__ import annotations

import threading

import pytest
import requests
from werkzeug.serving import make_server

from app.config import Config
from app.members.services import find_by_identity
from app.platforms.sandbox import enable_sandbox, load_or_create_sandbox, sandbox_applies
from app.points.services import balance_of
from app.stores.services import create_store

PRODUCTION = {
    "HUIYUAN_ENV": "production",
    "SECRET_KEY": "prod-secret-0123456789-abcdefghijklmnop",
    "DATABASE_URL": "postgresql+psycopg://db/huiyuan",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


@pytest.mark.parametrize(
    ("env", "applies"),
    [
        ({}, True),
        ({"HUIYUAN_ENV": "development"}, True),
        ({"HUIYUAN_ENV": "development", "WECHAT_APPID": "wx1"}, False),
        ({"ALIPAY_APP_ID": "2021"}, False),
        ({"HUIYUAN_ENV": "testing"}, False),
        (PRODUCTION, False),
    ],
)
def test_the_sandbox_applies_only_in_development_without_platform_credentials(env, applies):
    assert sandbox_applies(Config.from_env(env=env)) is applies


def test_sandbox_keys_are_made_once_and_kept(tmp_path):
    first = load_or_create_sandbox(tmp_path)
    again = load_or_create_sandbox(tmp_path)
    assert first == again
    assert (tmp_path / "sandbox.json").stat().st_mode & 0o077 == 0


@pytest.fixture
def sandbox_app(make_app, tmp_path):
    application = make_app()
    enable_sandbox(application, tmp_path / "sandbox")
    yield application
    for name in ("wechat", "alipay"):
        application.config["SANDBOX"][name].stop()


def test_the_sandbox_serves_login_and_phone_binding_offline(sandbox_app):
    with sandbox_app.app_context():
        client = sandbox_app.test_client()
        login = client.post("/mp/v1/wechat/login", json={"code": "sandbox-any"}).get_json()
        bound = client.post(
            "/mp/v1/wechat/phone",
            json={"code": "sandbox-phone-13812345678"},
            headers={"Authorization": f"Bearer {login['token']}"},
        )
        assert bound.status_code == 200, bound.get_json()
        ali = client.post("/mp/v1/alipay/login", json={"auth_code": "sandbox-any"})
        assert ali.status_code == 200, ali.get_json()
        # the Alipay phone binding from the README: the stand-in encrypts and signs it
        ali_phone = client.post(
            "/mp/v1/alipay/phone",
            json={"response": "sandbox-phone-13912345678"},
            headers={"Authorization": f"Bearer {ali.get_json()['token']}"},
        )
        assert ali_phone.status_code == 200, ali_phone.get_json()
        assert ali_phone.get_json()["member"]["phone_masked"] == "139****5678"


def test_demo_pay_sends_a_signed_notify_that_a_running_server_credits(sandbox_app):
    server = make_server("127.0.0.1", 0, sandbox_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with sandbox_app.app_context():
            create_store("SH001", "静安店")
        runner = sandbox_app.test_cli_runner()
        for wallet, payer, kind in [
            ("wechat", "oDEMO1", "wechat_openid"),
            ("alipay", "2088000000000555", "alipay_user_id"),
        ]:
            args = ["--wallet", wallet, "--amount", "35.00", "--store", "SH001", "--url", url]
            with sandbox_app.app_context():  # the CLI runs in the app that holds the sandbox
                result = runner.invoke(args=["demo", "pay", *args, "--payer", payer])
                assert result.exit_code == 0, result.output
                assert " -> 200 " in result.output
                app_id = sandbox_app.config["WECHAT_APPID"] if wallet == "wechat" else ""
                member = find_by_identity(kind, payer, app_id)
                assert member is not None and balance_of(member.id) == 35
                assert member.join_store_id is not None
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        server.shutdown()


def test_demo_pay_refuses_outside_the_sandbox(make_app):
    result = (
        make_app()
        .test_cli_runner()
        .invoke(args=["demo", "pay", "--wallet", "wechat", "--amount", "1.00"])
    )
    assert result.exit_code != 0 and "sandbox" in result.output


def test_platform_keys_are_checked_at_start_up(make_app):
    from app.config import ConfigError
    from tests.platform_kit import keys, platform_config

    config = platform_config("http://127.0.0.1:9/", "http://127.0.0.1:9/")
    indented = "\n".join("    " + line for line in keys()["alipay"][1].splitlines())
    application = make_app(**{**config, "ALIPAY_PUBLIC_KEY": indented})
    assert application.config["ALIPAY_PUBLIC_KEY"] == keys()["alipay"][1]
    with pytest.raises(ConfigError, match="app's own public key"):
        make_app(**{**config, "ALIPAY_PUBLIC_KEY": keys()["app"][1]})
    garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    with pytest.raises(ConfigError, match="WECHAT_PAY_PUBLIC_KEY"):
        make_app(**{**config, "WECHAT_PAY_PUBLIC_KEY": garbage})


def test_the_sandbox_opens_and_updates_member_cards(sandbox_app, admin_headers):
    from app.outbox.dispatcher import dispatch_outbox

    with sandbox_app.app_context():
        client = sandbox_app.test_client()
        login = client.post("/mp/v1/wechat/login", json={"code": "sandbox-card"}).get_json()
        member_headers = {"Authorization": f"Bearer {login['token']}"}
        dispatch_outbox()  # what the scheduler does every 15 s under `make run`
        (card,) = client.get("/mp/v1/cards", headers=member_headers).get_json()["items"]
        assert (card["platform"], card["state"], card["synced_points"]) == ("wechat", "active", 0)
        adjusted = client.post(
            f"/admin/v1/members/{login['member']['id']}/points/adjustments",
            json={"points": 120, "reason": "demo"},
            headers=admin_headers,
        )
        assert adjusted.status_code in (200, 201), adjusted.get_json()
        dispatch_outbox()
        (card,) = client.get("/mp/v1/cards", headers=member_headers).get_json()["items"]
        assert card["synced_points"] == 120
        wallet = sandbox_app.config["SANDBOX"]["wechat"].cards
        assert wallet[(card["template_id"], card["card_no"])]["bonus"] == 120
