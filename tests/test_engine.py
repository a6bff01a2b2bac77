"""The money engine: the payer's own money earns, refunds keep floor(E × (T − R) / T), refunds
before their payment are held, and the applier gives one ledger however it is batched."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from app.common.hooks import EARN_MULTIPLIERS
from app.db import transaction
from app.demo.notifications import (
    alipay_payment_fields,
    alipay_sign,
    wechat_v2_payment_fields,
    wechat_v2_refund_xml,
    wechat_v2_xml,
    wechat_v3_notify,
    wechat_v3_transaction,
)
from app.engine import journal as engine_journal
from app.engine.applier import apply_pending, drain
from app.engine.journal import backlog, journal
from app.engine.models import MoneyEvent
from app.engine.services import receive
from app.extensions import db
from app.members.models import Member, MemberIdentity
from app.payments.services import PaymentEvent, RefundEvent
from app.payments.timeparse import beijing
from app.points import lots
from app.points.models import PointsEntry, Purchase
from app.points.services import audit_differences, balance_of
from tests import platform_kit
from tests.conftest import requires_postgres
from tests.payment_asserts import only_member
from tests.platform_kit import (
    ALIPAY_APP_ID,
    ALIPAY_SELLER,
    API_KEY,
    API_V3_KEY,
    APPID,
    MCH_ID,
    PUB_KEY_ID,
    alipay_private,
    wechatpay_private,
)
from tests.pos_support import refund as pos_return
from tests.pos_support import sale, signed_client, statuses

pay_app = platform_kit.pay_app  # fixtures
standins = platform_kit.standins
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def v2(client, fields: dict) -> bytes:
    xml = wechat_v2_xml(fields, API_KEY)
    return client.post("/payments/wechat/notify", data=xml.encode(), content_type="text/xml").data


def v2_payment(txn: str = "4200000000000000000000000001", total: int = 10000, coupon: int = 0):
    fields = wechat_v2_payment_fields(
        appid=APPID, mch_id=MCH_ID, transaction_id=txn, openid="oENGINE", total_fee=total
    )
    if coupon:
        fields.update(cash_fee=str(total - coupon), coupon_fee=str(coupon), coupon_count="1")
    return fields


def v2_refund(client, refund_id: str, amount: int, txn: str = "4200000000000000000000000001"):
    xml = wechat_v2_refund_xml(
        appid=APPID,
        mch_id=MCH_ID,
        api_key=API_KEY,
        transaction_id=txn,
        refund_id=refund_id,
        total_fee=10000,
        refund_fee=amount,
    )
    return client.post("/payments/wechat/refund-notify", data=xml.encode(), content_type="text/xml")


def v3(client, resource: dict, event_type: str = "TRANSACTION.SUCCESS"):
    headers, body = wechat_v3_notify(
        resource=resource,
        event_type=event_type,
        platform_private_pem=wechatpay_private(),
        serial=PUB_KEY_ID,
        api_v3_key=API_V3_KEY,
    )
    return client.post("/payments/wechat/v3/notify", data=body, headers=headers)


def v3_payment(total: int, payer_total: int) -> dict:
    resource = wechat_v3_transaction(
        appid=APPID, mchid=MCH_ID, transaction_id="V3TXN1", openid="oV3", total=total, store=None
    )
    resource["amount"] = {"total": total, "payer_total": payer_total, "currency": "CNY"}
    return resource


def v3_refund(refund_id: str, amount: int) -> dict:
    return {
        "mchid": MCH_ID,
        "transaction_id": "V3TXN1",
        "out_trade_no": "HYV3TXN1",
        "refund_id": refund_id,
        "out_refund_no": f"R{refund_id}",
        "refund_status": "SUCCESS",
        "success_time": "2026-11-23T20:00:00+08:00",
        "amount": {"total": 10000, "refund": amount, "payer_total": 8000, "payer_refund": amount},
    }


def the_purchase() -> Purchase:
    return db.session.scalars(select(Purchase)).one()


# --- the payer's own money -----------------------------------------------------------------


def test_a_v2_payment_with_a_coupon_earns_on_cash_fee(pay_app):
    client = pay_app.test_client()
    assert b"SUCCESS" in v2(client, v2_payment(total=10000, coupon=2000))
    assert balance_of(only_member().id) == 80  # 80.00 yuan of the payer's own money, not 100
    purchase = the_purchase()
    assert (purchase.total_fen, purchase.paid_fen, purchase.discount_fen) == (10000, 8000, 2000)
    assert (purchase.points_base, purchase.points_earned) == (80, 80)


def test_a_v3_payment_earns_on_payer_total(pay_app):
    assert v3(pay_app.test_client(), v3_payment(10000, 7550)).status_code == 204
    assert balance_of(only_member().id) == 75
    assert (the_purchase().total_fen, the_purchase().discount_fen) == (10000, 2450)


def test_an_alipay_payment_earns_on_buyer_pay_amount(pay_app):
    form = alipay_payment_fields(
        app_id=ALIPAY_APP_ID,
        trade_no="2026112322001400000000000001",
        total_amount="100.00",
        buyer_id="2088000000000111",
        seller_id=ALIPAY_SELLER,
    )
    form.update(buyer_pay_amount="88.80", receipt_amount="100.00", point_amount="11.20")
    response = pay_app.test_client().post(
        "/payments/alipay/notify", data=alipay_sign(form, alipay_private())
    )
    assert response.data == b"success"
    assert balance_of(only_member().id) == 88
    assert the_purchase().discount_fen == 1120


def test_alipay_gmt_refund_with_milliseconds_is_parsed():
    at = beijing("2026-11-23 20:00:01.234", "%Y-%m-%d %H:%M:%S", fractional=True)
    assert at == datetime(2026, 11, 23, 12, 0, 1, 234000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "fmt", "fractional", "expected"),
    [
        ("20261123200001", "%Y%m%d%H%M%S", False, datetime(2026, 11, 23, 12, 0, 1, tzinfo=UTC)),
        (
            "2026-11-23 20:00:01",
            "%Y-%m-%d %H:%M:%S",
            True,
            datetime(2026, 11, 23, 12, 0, 1, tzinfo=UTC),
        ),
        (
            "2026-11-23 20:00:01.5",
            "%Y-%m-%d %H:%M:%S",
            True,
            datetime(2026, 11, 23, 12, 0, 1, 500000, tzinfo=UTC),
        ),
        # not zero-padded: still read, by strptime
        ("2026-1-3 9:00:01", "%Y-%m-%d %H:%M:%S", False, datetime(2026, 1, 3, 1, 0, 1, tzinfo=UTC)),
    ],
)
def test_platform_times_are_read_as_beijing_time(value, fmt, fractional, expected):
    assert beijing(value, fmt, fractional=fractional) == expected


@pytest.mark.parametrize(
    ("value", "fmt", "fractional"),
    [
        ("20261323200001", "%Y%m%d%H%M%S", False),  # month 13
        ("2026-11-23 20:00:01.234", "%Y-%m-%d %H:%M:%S", False),  # a fraction not allowed here
        ("2026-11-23 20:00:01.", "%Y-%m-%d %H:%M:%S", True),
        ("yesterday", "%Y%m%d%H%M%S", False),
    ],
)
def test_an_odd_platform_time_reads_as_now(value, fmt, fractional):
    before = datetime.now(UTC)
    assert before <= beijing(value, fmt, fractional=fractional) <= datetime.now(UTC)


# --- refunds: floor(E × (T − R) / T), and held until their payment arrives -------------------


def test_partial_refunds_keep_a_proportional_share_of_the_points(pay_app):
    client = pay_app.test_client()
    v2(client, v2_payment(total=10000, coupon=2000))  # E = 80 on T = 10000
    member = only_member().id
    assert v2_refund(client, "R1", 2500).status_code == 200
    assert balance_of(member) == 60  # floor(80 × 7500 / 10000)
    assert v2_refund(client, "R2", 3333).status_code == 200
    assert balance_of(member) == 33  # floor(80 × 4167 / 10000)
    assert v2_refund(client, "R3", 4167).status_code == 200
    assert balance_of(member) == 0
    refunds = the_purchase()
    assert (refunds.refunded_fen, refunds.points_earned, refunds.points_base) == (10000, 0, 80)
    assert audit_differences() == [] and lots.lot_differences() == []


def test_a_v2_refund_before_its_payment_is_held_then_applied(pay_app):
    client = pay_app.test_client()
    assert b"SUCCESS" in v2_refund(client, "EARLY", 5000).data  # stored, not dropped
    assert backlog()["held"] == 1
    assert db.session.scalar(select(func.count()).select_from(Purchase)) == 0
    v2(client, v2_payment(total=10000, coupon=2000))
    assert balance_of(only_member().id) == 40  # earned 80, keeps floor(80 × 5000 / 10000)
    assert backlog()["held"] == 0
    assert db.session.scalars(select(MoneyEvent.state)).all() == ["applied", "applied"]
    assert audit_differences() == []


def test_a_v3_refund_before_its_payment_is_held_then_applied(pay_app):
    client = pay_app.test_client()
    assert v3(client, v3_refund("V3R1", 2500), "REFUND.SUCCESS").status_code == 204
    assert backlog()["held"] == 1
    assert v3(client, v3_payment(10000, 8000)).status_code == 204
    assert balance_of(only_member().id) == 60  # floor(80 × 7500 / 10000)
    assert backlog()["held"] == 0


def test_a_pos_return_before_its_sale_is_held_then_applied(client, admin_headers, store):
    till = signed_client(client, admin_headers, "SH001")
    assert statuses(till.send_events([pos_return("RB1", "SB1", 2500)])) == ["parked"]
    response = till.send_events([sale("SB1", 10000, member={"phone": "13900000321"})])
    assert response.json["results"][0]["returns_applied"] == ["RB1"]
    member = db.session.scalars(select(Member).where(Member.phone.like("%13900000321"))).one()
    assert balance_of(member.id) == 75  # floor(100 × 7500 / 10000)


def test_a_refund_refused_by_the_rules_is_rejected_without_blocking_others(pay_app):
    with pay_app.app_context():
        bad = RefundEvent("wechat", "TXBAD", "wechat:refund:BAD", T0)  # no amount at all
        good = PaymentEvent("wechat", "TXGOOD", 1000, T0, [("wechat_openid", APPID, "oG")])
        transaction(lambda: journal([good, RefundEvent("wechat", "TXGOOD", "wechat:refund:B", T0)]))
        transaction(lambda: journal([bad]))
        transaction(lambda: journal([PaymentEvent("wechat", "TXBAD", 500, T0)]))
        drain()
        states = dict(db.session.execute(select(MoneyEvent.event_key, MoneyEvent.state)).all())
    assert states["wechat:refund:BAD"] == "rejected"
    assert states["wechat:pay:TXGOOD"] == "applied"


# --- one ledger, however the events are batched ----------------------------------------------


def _ledger(prefix: str) -> list[tuple]:
    rows = db.session.execute(
        select(
            MemberIdentity.external_id,
            PointsEntry.kind,
            PointsEntry.points,
            PointsEntry.balance_after,
        )
        .join(PointsEntry, PointsEntry.member_id == MemberIdentity.member_id)
        .where(MemberIdentity.external_id.like(f"{prefix}%"))
        .order_by(MemberIdentity.external_id, PointsEntry.id)
    ).all()
    return [(ext[len(prefix) :], kind, points, after) for ext, kind, points, after in rows]


def _stream(prefix: str) -> list[PaymentEvent | RefundEvent]:
    """100 events: 7 payers buying repeatedly, a few refunds, one refund before its payment."""
    events: list[PaymentEvent | RefundEvent] = []
    for n in range(92):
        payer = [("wechat_openid", APPID, f"{prefix}{n % 7}")]
        events.append(
            PaymentEvent(
                "wechat",
                f"{prefix}TX{n}",
                1000 + 37 * n,
                T0 + timedelta(minutes=n),
                payer,
                total_fen=1200 + 37 * n,
            )
        )
        if n % 13 == 5:
            events.append(
                RefundEvent("wechat", f"{prefix}TX{n}", f"{prefix}:r{n}", T0, refund_fen=400)
            )
    events.insert(3, RefundEvent("wechat", f"{prefix}TX20", f"{prefix}:early", T0, refund_fen=900))
    return events[:100]


def _tier_like_provider(contexts):
    """Double points from a member's third purchase on: depends on the previous purchases."""
    counts = dict(
        db.session.execute(
            select(Purchase.member_id, func.count())
            .where(Purchase.member_id.in_({c.member_id for c in contexts}))
            .group_by(Purchase.member_id)
        ).all()
    )
    return [200 if counts.get(c.member_id, 0) >= 2 else 100 for c in contexts]


def test_a_single_event_and_a_100_event_batch_give_identical_ledgers(pay_app):
    EARN_MULTIPLIERS.append(_tier_like_provider)
    try:
        for event in _stream("one-"):
            receive([event])  # each applied alone, as it arrives
        transaction(lambda: journal(_stream("all-")))
        assert apply_pending(limit=100) == 100  # the whole stream in one batch
    finally:
        EARN_MULTIPLIERS.remove(_tier_like_provider)
    single, batched = _ledger("one-"), _ledger("all-")
    assert single == batched
    assert len(single) >= 95 and any(kind == "clawback" for _, kind, _, _ in single)
    # payer 0 pays 10.00, 12.59, 15.18: the third purchase earns double (it follows two)
    assert [p for who, kind, p, _ in single if who == "0" and kind == "earn"][:3] == [10, 12, 30]
    assert audit_differences() == [] and lots.lot_differences() == []


def test_an_applier_that_dies_mid_batch_leaves_the_same_result_as_a_clean_run(pay_app, monkeypatch):
    from app.engine import applier

    transaction(lambda: journal(_stream("clean-")))
    drain()
    transaction(lambda: journal(_stream("dies-")))
    calls = {"n": 0}
    real = applier.record_refund

    def dies_on_the_third_refund(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")  # not an error a runner would catch or retry
        return real(*args, **kwargs)

    monkeypatch.setattr(applier, "record_refund", dies_on_the_third_refund)
    with pytest.raises(KeyboardInterrupt):
        apply_pending(limit=100)
    assert _ledger("dies-") == []  # the batch's transaction rolled back: nothing half applied
    assert backlog()["pending"] == 100
    monkeypatch.setattr(applier, "record_refund", real)
    drain()
    assert _ledger("dies-") == _ledger("clean-")
    assert audit_differences() == []


@requires_postgres
def test_concurrent_appliers_never_apply_an_event_twice(pay_app):
    transaction(lambda: journal(_stream("race-")))
    transaction(lambda: journal(_stream("solo-")))
    app = pay_app

    def work() -> None:
        with app.app_context():
            drain(limit=7)
            db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backlog()["pending"] == 0
    assert _ledger("race-") == _ledger("solo-")
    assert audit_differences() == [] and lots.lot_differences() == []


@requires_postgres
def test_a_notification_is_stored_after_the_server_dropped_the_journal_connection(pay_app):
    client = pay_app.test_client()
    assert b"SUCCESS" in v2(client, v2_payment("4200000000000000000000000011", total=1000))
    held = engine_journal._held.journal.conn  # the web process's journal connection
    # the server ends it (a restart, an idle timeout, an operator's pg_terminate_backend)
    db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": held.info.backend_pid})
    db.session.commit()
    assert b"SUCCESS" in v2(client, v2_payment("4200000000000000000000000012", total=2000))
    assert engine_journal._held.journal.conn is not held
    assert db.session.scalar(select(func.count(MoneyEvent.id))) == 2
    assert balance_of(only_member().id) == 10 + 20
    assert b"SUCCESS" in v2(client, v2_payment("4200000000000000000000000012", total=2000))
    assert db.session.scalar(select(func.count(MoneyEvent.id))) == 2  # a replay stores nothing


@requires_postgres
def test_the_journal_connection_commits_each_notification_and_is_one_per_thread(pay_app):
    stored: dict[str, list[int]] = {}

    def store(name: str) -> None:
        with pay_app.app_context():
            stored[name] = receive(_payments(name, 3))
            stored[name + "-conn"] = [id(engine_journal._held.journal.conn)]
            db.session.remove()

    threads = [threading.Thread(target=store, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stored["a"]) == len(stored["b"]) == 3
    assert stored["a-conn"] != stored["b-conn"]
    # committed: another connection sees every row at once
    with db.engine.connect() as other:
        assert other.scalar(select(func.count(MoneyEvent.id))) == 6


# --- where the applier runs --------------------------------------------------------------------


def _payments(prefix: str, count: int) -> list[PaymentEvent]:
    return [
        PaymentEvent(
            "wechat", f"{prefix}TX{n}", 1000, T0, [("wechat_openid", APPID, f"{prefix}{n}")]
        )
        for n in range(count)
    ]


class _WorkerClock:
    """The applier loop's ``time``: a clock that moves only when the test moves it, so what
    the loop waits does not depend on how fast this machine applies a batch."""

    def __init__(self, sleep) -> None:
        self.now = 1000.0
        self.sleep = sleep

    def monotonic(self) -> float:
        return self.now


def test_the_applier_process_gathers_payments_that_arrive_after_a_partial_batch(
    pay_app, monkeypatch
):
    from app.engine import worker

    transaction(lambda: journal(_payments("first-", 3)))
    taken: list[int] = []
    waits: list[float] = []
    real_apply = worker.apply_pending

    def counting(**kwargs):
        taken.append(real_apply(**kwargs))
        clock.now += 0.04  # each batch takes 40 ms of the worker's clock
        return taken[-1]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds
        if len(waits) == 1:  # five more notifications are stored while the applier gathers
            transaction(lambda: journal(_payments("later-", 5)))

    clock = _WorkerClock(sleep)
    monkeypatch.setattr(worker, "apply_pending", counting)
    monkeypatch.setattr(worker, "time", clock)
    applied = worker.run(batch=500, gather_ms=250, stop=lambda: len(taken) >= 3)
    # the partial batch of 3 is followed by a wait of the rest of the 250 ms window, and the
    # five stored meanwhile are applied together in one transaction
    assert applied == 8 and taken == [3, 5, 0]
    assert waits == [pytest.approx(0.21), pytest.approx(0.21)]
    assert backlog()["pending"] == 0 and audit_differences() == []


def test_the_applier_goes_straight_on_after_a_full_batch_and_gathers_nothing_when_off(
    pay_app, monkeypatch
):
    from app.engine import worker

    transaction(lambda: journal(_payments("full-", 7)))
    waits: list[float] = []
    monkeypatch.setattr(worker, "time", _WorkerClock(waits.append))
    # batches of 5: a full one, then a partial one of 2 (gathering is off), then empty
    assert worker.run(batch=5, gather_ms=0, stop=lambda: True) == 7
    assert waits == []  # never slept: the stop was asked for with an empty journal
    transaction(lambda: journal(_payments("full2-", 7)))
    assert worker.run(batch=5, gather_ms=250, stop=lambda: True) == 7
    assert waits == [pytest.approx(0.25)]  # only after the partial batch (the clock stood)
    assert backlog()["pending"] == 0


def test_an_idle_applier_looks_less_often_until_work_arrives(pay_app, monkeypatch):
    from app.engine import worker

    waits: list[float] = []
    looks = iter([0, 0, 0, 0, 0, 0, 2, 0, 0, 0])
    monkeypatch.setattr(worker, "apply_pending", lambda **kwargs: next(looks))
    monkeypatch.setattr(worker, "time", _WorkerClock(waits.append))
    assert worker.run(batch=5, gather_ms=0, stop=lambda: len(waits) >= 8) == 2
    # empty looks double the wait up to the idle cap; applied work starts again at the first
    assert waits == [0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.02, 0.04]
    assert worker.IDLE_POLL_SECONDS == 0.2


def test_with_a_worker_the_notify_only_stores_and_me_applies_the_payers_rows(make_app, standins):
    from miniprogram_api.auth import issue_member_token

    wechat, alipay = standins
    application = make_app(
        ENGINE_APPLY="worker", **platform_kit.platform_config(wechat.url, alipay.url)
    )
    with application.app_context():
        client = application.test_client()
        assert b"SUCCESS" in v2(client, v2_payment("TXW1", total=1000))
        assert db.session.scalar(select(func.count()).select_from(Member)) == 0  # stored only
        assert backlog()["pending"] == 1
        drain()  # what the applier process does
        member = only_member().id
        assert b"SUCCESS" in v2(client, v2_payment("TXW2", total=2000))
        token = issue_member_token(member, "wechat")
        me = client.get("/mp/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json["points_balance"] == 30  # the payment a moment ago is there
        ops = client.get("/metrics").data.decode()
        assert 'huiyuan_journal_events{state="pending"} 0.0' in ops


def test_first_time_payers_of_one_batch_join_together_each_once_with_one_welcome(pay_app):
    from app.coupons.models import WelcomeGrant
    from app.outbox.models import OutboxMessage
    from tests.test_coupons_state_machine import new_template

    new_template(welcome=True, name="开卡礼")
    payers = ["first-a", "first-b", "first-a", "first-c"]  # first-a pays twice in the batch
    events = [
        PaymentEvent(
            "wechat", f"FIRST{n}", 1000, T0 + timedelta(minutes=n), [("wechat_openid", APPID, who)]
        )
        for n, who in enumerate(payers)
    ]
    transaction(lambda: journal(events))
    assert apply_pending(limit=10) == 4  # one batch: the three new members created together
    holders = dict(
        db.session.execute(
            select(MemberIdentity.external_id, MemberIdentity.member_id).where(
                MemberIdentity.external_id.in_(set(payers))
            )
        ).all()
    )
    members = {holders[p] for p in payers}
    assert len(members) == 3
    assert [balance_of(holders[p]) for p in ("first-a", "first-b", "first-c")] == [20, 10, 10]
    grants = db.session.execute(
        select(WelcomeGrant.member_id, func.count())
        .where(WelcomeGrant.member_id.in_(members))
        .group_by(WelcomeGrant.member_id)
    ).all()
    assert sorted(n for _, n in grants) == [1, 1, 1]
    welcomes = db.session.execute(
        select(OutboxMessage.member_id, OutboxMessage.payload).where(
            OutboxMessage.member_id.in_(members), OutboxMessage.kind == "welcome"
        )
    ).all()
    assert len(welcomes) == 3 and all(p.get("coupon_code") for _, p in welcomes)
    assert audit_differences() == [] and lots.lot_differences() == []
