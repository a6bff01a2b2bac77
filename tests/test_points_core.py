"""The ledger core: entries with idempotency keys, a cached balance equal to their sum."""

import threading
from datetime import UTC, datetime

import pytest

from app.db import transaction, unit_of_work
from app.errors import Conflict
from app.members.services import create_member
from app.points.purchases import record_purchase, record_refund
from app.points.services import (
    InsufficientPoints,
    audit_differences,
    balance_of,
    member_waves,
    post_entry,
)
from tests.conftest import requires_postgres

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def new_member(phone="13800000001") -> int:
    with unit_of_work():
        member = create_member(source="test", phone=phone)
    return member.id


def test_a_repeated_idempotency_key_returns_the_first_entry_and_changes_nothing():
    member_id = new_member()
    with unit_of_work():
        first = post_entry(member_id, 50, kind="adjust", idempotency_key="k1")
    with unit_of_work():
        again = post_entry(member_id, 50, kind="adjust", idempotency_key="k1")
    assert first.created and not again.created
    assert again.entry.id == first.entry.id
    assert balance_of(member_id) == 50


def test_a_key_reused_for_different_content_is_refused():
    member_id = new_member()
    with unit_of_work():
        post_entry(member_id, 50, kind="adjust", idempotency_key="k1")
    with pytest.raises(Conflict) as info, unit_of_work():
        post_entry(member_id, 60, kind="adjust", idempotency_key="k1")
    assert info.value.code == "IDEMPOTENCY_KEY_REUSED"


def test_spending_never_takes_the_balance_below_zero_but_a_clawback_may():
    member_id = new_member()
    with unit_of_work():
        post_entry(member_id, 10, kind="adjust", idempotency_key="in")
    with pytest.raises(InsufficientPoints), unit_of_work():
        post_entry(member_id, -11, kind="redeem", idempotency_key="out")
    assert balance_of(member_id) == 10
    with unit_of_work():
        post_entry(member_id, -15, kind="clawback", idempotency_key="cb", allow_negative=True)
    assert balance_of(member_id) == -5
    assert audit_differences() == []


def test_a_purchase_keeps_floor_e_times_t_minus_r_over_t_after_each_refund():
    member_id = new_member()
    with unit_of_work():
        purchase, created = record_purchase(
            source="pos",
            external_id="S1:1",
            member_id=member_id,
            store_id=None,
            paid_fen=3599,
            occurred_at=T0,
        )
    assert created and balance_of(member_id) == 35  # E = 35, T = 3599
    # refund 0.99: keeps floor(35 × 3500 / 3599) = 34
    with unit_of_work():
        record_refund(purchase, refund_key="r1", refund_fen=99, occurred_at=T0)
    assert balance_of(member_id) == 34
    # refund 17.00 more: keeps floor(35 × 1800 / 3599) = 17
    with unit_of_work():
        record_refund(purchase, refund_key="r2", refund_fen=1700, occurred_at=T0)
    assert balance_of(member_id) == 17
    with unit_of_work():
        record_refund(purchase, refund_key="r2", refund_fen=1700, occurred_at=T0)  # replay
    assert balance_of(member_id) == 17
    # refund more than remains: never more than was earned
    with unit_of_work():
        record_refund(purchase, refund_key="r3", refund_fen=100000, occurred_at=T0)
    assert balance_of(member_id) == 0
    assert audit_differences() == []


def test_a_replayed_purchase_credits_once():
    member_id = new_member()
    for _ in range(3):
        with unit_of_work():
            record_purchase(
                source="wechat",
                external_id="tx1",
                member_id=member_id,
                store_id=None,
                paid_fen=1000,
                occurred_at=T0,
            )
    assert balance_of(member_id) == 10


@requires_postgres
def test_concurrent_spends_never_overspend_and_concurrent_earns_all_count(app):
    member_id = new_member()
    with unit_of_work():
        post_entry(member_id, 100, kind="adjust", idempotency_key="seed")
    outcomes: list[str] = []
    lock = threading.Lock()

    def spend(i: int) -> None:
        with app.app_context():

            def attempt() -> None:
                with unit_of_work():
                    post_entry(member_id, -30, kind="redeem", idempotency_key=f"spend-{i}")

            try:
                transaction(attempt)
                result = "ok"
            except InsufficientPoints:
                result = "refused"
            with lock:
                outcomes.append(result)

    def earn(i: int) -> None:
        with app.app_context(), unit_of_work():
            post_entry(member_id, 1, kind="earn", idempotency_key=f"earn-{i}")

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=earn, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = outcomes.count("ok")
    assert balance_of(member_id) == 100 + 8 - 30 * spent
    assert balance_of(member_id) >= 0
    assert spent == 3  # 108 covers three spends of 30 whatever the order, never four
    assert audit_differences() == []


def test_member_waves_keep_each_members_order_and_stack_only_consecutive_stackable_items():
    # members 1 and 2; None never conflicts
    ids = [1, 1, 2, 1, 1, None, 1]
    assert member_waves(ids) == [[0, 2, 5], [1], [3], [4], [6]]
    # items 0, 1 (member 1) stack; 3 does not (it follows a plain item in member 1's order)
    stackable = [True, True, True, False, True, False, True]
    assert member_waves(ids, stackable) == [[0, 1, 2, 5], [3], [4, 6]]
