"""Phone binding joins a person's members into one: identities, points, purchases, history."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.db import unit_of_work
from app.errors import Conflict
from app.extensions import db
from app.members import merge
from app.members.binding import bind_phone
from app.members.models import Member, MemberMerge
from app.members.payers import Payer, enrol, payer_identity
from app.members.services import create_member, resolve_member
from app.points.models import Purchase
from app.points.purchases import record_purchase
from app.points.services import audit_differences, balance_of, post_entry
from miniprogram_api.auth import issue_member_token, member_from_token
from tests.conftest import requires_postgres
from tests.platform_kit import run_concurrently

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PHONE = "13812345678"


def member_with(points: int, *, phone=None, identity=None) -> int:
    with unit_of_work():
        identities = [identity] if identity else []
        member = create_member(source="test", phone=phone, identities=identities)
        if points:
            post_entry(member.id, points, kind="adjust", idempotency_key=f"seed-{member.id}")
    return member.id


def test_binding_a_phone_held_by_another_member_merges_into_the_holder():
    holder = member_with(100, phone=PHONE)
    payer = member_with(35, identity=("wechat_openid", "wxapp", "oMERGE"))
    with unit_of_work():
        record_purchase(
            source="wechat",
            external_id="T1",
            member_id=payer,
            store_id=None,
            paid_fen=1000,
            occurred_at=T0,
        )
    token = issue_member_token(payer, "wechat")

    result = bind_phone(payer, "+86 138-1234-5678", channel="wechat")

    assert result.member_id == holder and result.merged_from == payer
    survivor = resolve_member(payer)
    assert survivor.id == holder
    assert {(i.kind, i.external_id) for i in survivor.identities} == {
        ("phone", PHONE),
        ("wechat_openid", "oMERGE"),
    }
    assert balance_of(holder) == 100 + 35 + 10 and balance_of(payer) == 0
    absorbed = db.session.get(Member, payer)
    assert absorbed.status == "merged" and absorbed.merged_into_id == holder
    purchase = db.session.scalars(select(Purchase)).one()
    assert purchase.member_id == holder
    assert member_from_token(token).id == holder
    record = db.session.scalars(select(MemberMerge)).one()
    assert (record.survivor_id, record.absorbed_id) == (holder, payer)
    assert record.reason == "phone_binding:wechat"
    assert record.moved["points"] == 45 and record.moved["purchases"] == 1
    assert record.moved["identities"] == [["wechat_openid", "wxapp", "oMERGE"]]
    assert record.created_at is not None
    assert audit_differences() == []


def test_binding_again_changes_nothing():
    holder = member_with(10, phone=PHONE)
    payer = member_with(5, identity=("alipay_user_id", "", "2088000000000001"))
    bind_phone(payer, PHONE, channel="alipay")
    again = bind_phone(payer, PHONE, channel="alipay")
    assert again.member_id == holder and again.merged_from is None
    assert balance_of(holder) == 15
    assert len(db.session.scalars(select(MemberMerge)).all()) == 1


def test_a_member_without_a_phone_simply_gets_it():
    payer = member_with(5, identity=("alipay_user_id", "", "2088000000000001"))
    result = bind_phone(payer, PHONE, channel="alipay")
    assert result.member_id == payer and result.merged_from is None
    assert db.session.get(Member, payer).phone == PHONE


def test_a_member_with_another_phone_cannot_take_a_second_one():
    member = member_with(0, phone="13900000000")
    with pytest.raises(Conflict) as info:
        bind_phone(member, PHONE, channel="wechat")
    assert info.value.code == "PHONE_ALREADY_BOUND"


def test_registered_merge_steps_run_inside_the_merge_with_absorbed_then_survivor():
    holder = member_with(0, phone=PHONE)
    payer = member_with(0, identity=("wechat_openid", "wxapp", "oSTEP"))
    calls = []

    def step(absorbed_id: int, survivor_id: int) -> None:
        calls.append((absorbed_id, survivor_id))
        assert db.session.get(Member, absorbed_id).status == "merged"

    merge.register_merge_step(step)
    merge.register_merge_step(step)  # registering twice runs it once
    try:
        bind_phone(payer, PHONE, channel="wechat")
    finally:
        merge.MERGE_STEPS.remove(step)
    assert calls == [(payer, holder)]


def test_a_failing_merge_step_rolls_the_whole_merge_back():
    holder = member_with(20, phone=PHONE)
    payer = member_with(5, identity=("wechat_openid", "wxapp", "oFAIL"))

    def broken(absorbed_id: int, survivor_id: int) -> None:
        raise Conflict("coupon move failed", code="STEP_FAILED")

    merge.register_merge_step(broken)
    try:
        with pytest.raises(Conflict):
            bind_phone(payer, PHONE, channel="wechat")
    finally:
        merge.MERGE_STEPS.remove(broken)
    db.session.expire_all()
    assert db.session.get(Member, payer).status == "active"
    assert balance_of(holder) == 20 and balance_of(payer) == 5


def test_members_absorbed_earlier_follow_to_the_final_survivor():
    first = member_with(1, identity=("wechat_openid", "wxapp", "oA"))
    middle = member_with(2, identity=("alipay_user_id", "", "2088000000000002"))
    final = member_with(4, phone=PHONE)
    with unit_of_work():
        locked = merge.lock_members(first, middle)
        merge.merge_members(locked[first], locked[middle], reason="test")
    bind_phone(middle, PHONE, channel="alipay")
    assert db.session.get(Member, first).merged_into_id == final
    assert resolve_member(first).id == final and balance_of(final) == 7


def test_pay_as_membership_finds_the_member_by_any_of_its_identities():
    with unit_of_work():
        [created] = enrol([Payer((("alipay_user_id", "", "2088000000000003"),), source="t")])
    with unit_of_work():
        [found] = enrol(
            [
                Payer(
                    (("alipay_user_id", "", "2088000000000003"), ("alipay_open_id", "app", "0o3")),
                    source="t",
                )
            ]
        )
    assert found == created
    assert len(resolve_member(created).identities) == 2


def test_enrol_creates_a_payer_named_twice_in_one_batch_once():
    payer = Payer((("wechat_openid", "wxapp", "oTWICE"),), source="t")
    with unit_of_work():
        first, second = enrol([payer, payer])
    assert first == second
    assert len(db.session.scalars(select(Member)).all()) == 1


@requires_postgres
def test_two_wallets_binding_the_holders_phone_at_once_both_merge_into_it(app):
    holder = member_with(100, phone=PHONE)
    wechat = member_with(35, identity=("wechat_openid", "wxapp", "oRACE"))
    alipay = member_with(20, identity=("alipay_user_id", "", "2088000000000009"))
    queue = [(wechat, "wechat"), (alipay, "alipay")]

    def bind():
        member_id, channel = queue.pop()
        return bind_phone(member_id, PHONE, channel=channel).member_id

    assert run_concurrently(app, 2, bind) == [holder, holder]
    assert balance_of(holder) == 155
    assert resolve_member(wechat).id == holder and resolve_member(alipay).id == holder
    assert len(db.session.scalars(select(MemberMerge)).all()) == 2
    assert audit_differences() == []


@requires_postgres
def test_two_members_racing_to_bind_one_new_phone_end_as_one_member(app):
    first = member_with(35, identity=("wechat_openid", "wxapp", "oRACE1"))
    second = member_with(20, identity=("alipay_user_id", "", "2088000000000010"))
    queue = [first, second]

    def bind():
        return bind_phone(queue.pop(), PHONE, channel="race").member_id

    results = run_concurrently(app, 2, bind)
    assert results[0] == results[1]
    survivor = results[0]
    assert balance_of(survivor) == 55
    assert {resolve_member(first).id, resolve_member(second).id} == {survivor}
    assert db.session.get(Member, survivor).phone == PHONE
    assert audit_differences() == []


@requires_postgres
def test_payments_racing_a_merge_all_land_on_the_survivor(app):
    from app.engine.services import receive
    from app.payments.services import PaymentEvent

    holder = member_with(100, phone=PHONE)
    payer = member_with(0, identity=("wechat_openid", "wxapp", "oRACEPAY"))
    jobs = [("merge", 0)] + [("pay", i) for i in range(9)]

    def work():
        kind, i = jobs.pop()
        if kind == "merge":
            return bind_phone(payer, PHONE, channel="wechat").member_id
        event = PaymentEvent(
            source="wechat",
            transaction_id=f"RACE{i}",
            paid_fen=1000,
            occurred_at=T0,
            payer=[("wechat_openid", "wxapp", "oRACEPAY")],
        )
        return bool(receive([event]))

    results = run_concurrently(app, len(jobs), work)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert balance_of(payer) == 0
    assert balance_of(holder) == 100 + 9 * 10
    assert audit_differences() == []


def _wait_until_blocked_on_a_lock(app, or_done: threading.Thread | None = None) -> None:
    """Until another connection waits on a row lock, or ``or_done`` has finished (bounded:
    fails after ~5 s)."""
    from sqlalchemy import text

    with app.app_context():
        for _ in range(500):
            waiting = db.session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar()
            db.session.rollback()
            if waiting or (or_done is not None and not or_done.is_alive()):
                return
            threading.Event().wait(0.01)
    raise AssertionError("the merge never waited for the credit's lock")


@requires_postgres
def test_a_merge_waits_for_an_in_flight_credit_and_then_moves_it(app):
    from app.members.services import lock_live_member

    holder = member_with(100, phone=PHONE)
    payer = member_with(0, identity=("wechat_openid", "wxapp", "oINFLIGHT"))
    merged: list[int] = []
    thread = threading.Thread(
        target=lambda: merged.extend(
            run_in_context(app, lambda: bind_phone(payer, PHONE, channel="wechat").member_id)
        )
    )
    with unit_of_work():
        member = lock_live_member(payer)  # what a payment does before crediting
        thread.start()
        _wait_until_blocked_on_a_lock(app)
        record_purchase(
            source="wechat",
            external_id="INFLIGHT",
            member_id=member.id,
            store_id=None,
            paid_fen=1000,
            occurred_at=T0,
        )
    thread.join()
    assert merged == [holder]
    assert balance_of(payer) == 0 and balance_of(holder) == 110
    with unit_of_work():
        assert lock_live_member(payer).id == holder  # later credits go to the survivor


def run_in_context(app, fn):
    with app.app_context():
        try:
            return [fn()]
        finally:
            db.session.remove()


def test_a_till_payer_is_enrolled_as_the_member_a_wallet_payment_made(make_app):
    application = make_app(WECHAT_APPID="wxpos")
    with application.app_context():
        payer = Payer((payer_identity("wechat_openid", "oPOS"),), source="pos")
        with unit_of_work():
            [first] = enrol([payer])
        with unit_of_work():
            [again] = enrol([payer])
        identity = resolve_member(first).identities[0]
    assert first == again
    assert (identity.kind, identity.app, identity.external_id) == ("wechat_openid", "wxpos", "oPOS")


def test_a_phone_held_only_in_the_member_column_still_leads_to_a_merge():
    holder = member_with(3, identity=("pos_card", "", "CARD1"))
    with unit_of_work():
        db.session.get(Member, holder).phone = PHONE  # a row written without its identity
    payer = member_with(4, identity=("wechat_openid", "wxapp", "oCOLUMN"))
    assert bind_phone(payer, PHONE, channel="wechat").member_id == holder
    assert balance_of(holder) == 7
    assert {i.kind for i in resolve_member(holder).identities} == {
        "pos_card",
        "wechat_openid",
        "phone",
    }


@requires_postgres
def test_a_merge_racing_a_till_sale_never_strands_its_points(app, monkeypatch):
    """A till sale share-locks its member as a payment does: a merge that starts between
    finding the member and crediting it waits, then moves the credit."""
    from app.pos import events
    from app.pos.context import TillContext
    from app.stores.services import create_store
    from tests.pos_support import sale

    holder = member_with(100, phone=PHONE)
    absorbed = member_with(0, identity=("wechat_openid", "wxapp", "oRACEPOS"))
    store = create_store("MERGE1", "merge race")
    ctx = TillContext("T-merge", store.id, "MERGE1")
    data = sale("S-RACE", 1000, member={"member_id": absorbed})
    merged: list[int] = []
    thread = threading.Thread(
        target=lambda: merged.extend(
            run_in_context(app, lambda: bind_phone(absorbed, PHONE, channel="wechat").member_id)
        )
    )
    credit = events.record_purchases

    def merge_then_credit(items):
        # the member is found; now a merge starts: it must wait (or, unlocked, it would finish)
        thread.start()
        _wait_until_blocked_on_a_lock(app, or_done=thread)
        return credit(items)

    monkeypatch.setattr(events, "record_purchases", merge_then_credit)
    [result] = events.ingest_events(ctx, [data])
    assert result["status"] == "accepted"
    thread.join()
    assert merged == [holder]
    assert balance_of(absorbed) == 0 and balance_of(holder) == 110
    assert audit_differences() == []
