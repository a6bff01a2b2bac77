"""Outbox delivery through WeChat subscribe messages: once each, even across a killed worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.common.clock import advance, frozen, utcnow
from app.db import unit_of_work
from app.extensions import db, redis_store
from app.jobs.runner import enqueue
from app.members.services import add_identity, create_member
from app.outbox.dispatcher import dispatch_outbox
from app.outbox.models import OutboxMessage
from app.outbox.services import enqueue_message
from tests.conftest import TEST_SECRET, on_postgres
from tests.platform_kit import APP_SECRET, APPID, standins  # noqa: F401 (fixture)

TEMPLATES = json.dumps(
    {
        "points_earned": {
            "template_id": "TPL-POINTS",
            "page": "pages/points/index",
            "data": {"number1": "{points}", "thing2": "本次积分，余额 {balance}"},
        },
        "coupon_received": {"template_id": "TPL-COUPON", "data": {"thing1": "{name}"}},
    }
)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def wechat(standins):  # noqa: F811
    return standins[0]


@pytest.fixture
def outbox_app(make_app, wechat):
    application = make_app(
        WECHAT_APPID=APPID,
        WECHAT_APP_SECRET=APP_SECRET,
        WECHAT_API_BASE_URL=wechat.url,
        WECHAT_SUBSCRIBE_TEMPLATES=TEMPLATES,
        OUTBOX_LEASE_SECONDS=2,
    )
    with application.app_context():
        yield application


def members_with_messages(count: int, *, openid: bool = True, kind: str = "points_earned"):
    ids = []
    with unit_of_work():
        for i in range(count):
            member = create_member(source="test", welcome=False)
            if openid:
                add_identity(member, "wechat_openid", f"openid-{member.id}", APPID)
            enqueue_message(
                member.id,
                kind,
                {"points": 10 + i, "balance": 100 + i, "name": "券"},
                dedupe_key=f"test:{member.id}",
            )
            ids.append(member.id)
    return ids


def statuses() -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage.status).order_by(OutboxMessage.id)))


def test_a_message_is_sent_once_with_its_template_filled(outbox_app, wechat):
    (member_id,) = members_with_messages(1)
    assert dispatch_outbox() == {"sent": 1, "retry": 0, "failed": 0, "skipped": 0}
    assert dispatch_outbox()["sent"] == 0
    (delivered,) = wechat.subscribe_messages.values()
    assert delivered["touser"] == f"openid-{member_id}"
    assert delivered["template_id"] == "TPL-POINTS"
    assert delivered["data"] == {
        "number1": {"value": "10"},
        "thing2": {"value": "本次积分，余额 100"},
    }
    assert delivered["page"].startswith("pages/points/index?hy_msg=hy-outbox-")
    assert statuses() == ["sent"]


def test_messages_without_a_template_or_a_recipient_are_skipped_not_retried(outbox_app, wechat):
    members_with_messages(1, kind="birthday")  # no template configured for birthdays
    members_with_messages(1, openid=False)  # never used the WeChat mini-program
    (refuser,) = members_with_messages(1)
    wechat.refuse_subscribe.add(f"openid-{refuser}")
    assert dispatch_outbox()["skipped"] == 3
    assert statuses() == ["skipped"] * 3
    assert wechat.subscribe_messages == {}


def test_a_failed_send_is_retried_later_with_backoff(outbox_app, wechat):
    members_with_messages(1)
    wechat.stop()
    with frozen(utcnow()):
        assert dispatch_outbox()["retry"] == 1
        message = db.session.scalars(select(OutboxMessage)).one()
        assert message.status == "pending" and message.attempts == 1
        assert "unreachable" in message.last_error
        wechat.start()
        outbox_app.config["WECHAT_API_BASE_URL"] = wechat.url
        assert dispatch_outbox()["sent"] == 0  # not due yet
        advance(message.next_attempt_at - utcnow())
        assert dispatch_outbox()["sent"] == 1
    assert len(wechat.subscribe_messages) == 1


def test_flushing_redis_loses_no_message(outbox_app, wechat):
    members_with_messages(3)
    redis_store.client.flushdb()  # queues, locks and the cached access token are gone
    assert dispatch_outbox()["sent"] == 3
    assert len(wechat.subscribe_messages) == 3


def _worker(*args: str) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT", "ALIPAY"))},
        "HUIYUAN_ENV": "testing",
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": os.environ["TEST_DATABASE_URL"],
        "REDIS_URL": os.environ["TEST_REDIS_URL"],
        "WECHAT_APPID": APPID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_SUBSCRIBE_TEMPLATES": TEMPLATES,
        "OUTBOX_LEASE_SECONDS": "2",
    }
    env["WECHAT_API_BASE_URL"] = args[0]
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", *args[1:]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.skipif(
    not (on_postgres() and os.environ.get("TEST_REDIS_URL")),
    reason="needs PostgreSQL and a real Redis: the worker is another process",
)
def test_a_worker_killed_mid_batch_and_restarted_delivers_every_message_exactly_once(
    outbox_app, wechat
):
    ids = members_with_messages(30)
    wechat.subscribe_delay = 0.05
    enqueue("outbox.dispatch")
    first = _worker(wechat.url, "outbox")
    deadline = time.monotonic() + 60
    while wechat.subscribe_sends < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    interrupted = statuses()
    # killed in the middle: WeChat had answered 8 sends, but the 8th may not be recorded yet
    assert 7 <= interrupted.count("sent") < 30, interrupted
    assert interrupted.count("sending") <= 1  # at most the one in flight, leased
    assert interrupted.count("sent") + interrupted.count("sending") >= 8, interrupted
    time.sleep(2.2)  # the lease of the message in flight runs out
    enqueue("outbox.dispatch")
    second = _worker(wechat.url, "outbox", "--burst")
    assert second.wait(timeout=90) == 0
    assert statuses() == ["sent"] * 30
    delivered = wechat.subscribe_messages
    assert sorted(m["touser"] for m in delivered.values()) == sorted(f"openid-{i}" for i in ids)
    assert wechat.subscribe_sends <= 31  # only the message in flight at the kill went twice
