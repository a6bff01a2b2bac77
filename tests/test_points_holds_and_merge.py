import threading

import pytest

from app.db import transaction, unit_of_work
from app.errors import Conflict
from app.points.holds import capture_points, hold_points, release_points
from app.points.services import (
    InsufficientPoints,
    audit_differences,
    balance_of,
    post_entry,
    transfer_on_merge,
)
from tests.conftest import requires_postgres
from tests.test_points_core import new_member


def funded(points: int, phone: str = "13800000001") -> int:
    member_id = new_member(phone)
    with unit_of_work():
        post_entry(member_id, points, kind="adjust", idempotency_key=f"fund-{member_id}")
    return member_id


def test_a_hold_takes_points_at_once_a_release_gives_them_back_once():
    member_id = funded(100)
    with unit_of_work():
        hold_points(member_id, 40, hold_key="r1")
        hold_points(member_id, 40, hold_key="r1")  # repeat: same hold
    assert balance_of(member_id) == 60
    with unit_of_work():
        release_points("r1")
    with unit_of_work():
        release_points("r1")
    assert balance_of(member_id) == 100
    with pytest.raises(Conflict) as info, unit_of_work():
        capture_points("r1")
    assert info.value.code == "HOLD_RELEASED"


def test_a_captured_hold_stays_spent_and_cannot_be_released():
    member_id = funded(100)
    with unit_of_work():
        hold_points(member_id, 30, hold_key="r2")
        capture_points("r2")
    with pytest.raises(Conflict) as info, unit_of_work():
        release_points("r2")
    assert info.value.code == "HOLD_CAPTURED"
    assert balance_of(member_id) == 70


def test_a_hold_cannot_exceed_the_balance():
    member_id = funded(10)
    with pytest.raises(InsufficientPoints), unit_of_work():
        hold_points(member_id, 11, hold_key="r3")
    assert balance_of(member_id) == 10


def test_merge_moves_the_whole_balance_once_even_a_debt():
    rich = funded(120, "13800000001")
    owing = new_member("13800000002")
    with unit_of_work():
        post_entry(owing, -7, kind="clawback", idempotency_key="cb", allow_negative=True)
    survivor = funded(5, "13800000003")
    for _ in range(2):
        with unit_of_work():
            transfer_on_merge(rich, survivor, merge_key="m1")
            transfer_on_merge(owing, survivor, merge_key="m2")
    assert balance_of(survivor) == 5 + 120 - 7
    assert balance_of(rich) == 0 and balance_of(owing) == 0
    assert audit_differences() == []


@requires_postgres
def test_two_tills_racing_for_the_last_points_have_exactly_one_winner(app):
    member_id = funded(50)
    results: list[str] = []

    def till(i: int) -> None:
        with app.app_context():

            def attempt() -> None:
                with unit_of_work():
                    hold_points(member_id, 50, hold_key=f"till-{i}")

            try:
                transaction(attempt)
                results.append("won")
            except InsufficientPoints:
                results.append("refused")

    threads = [threading.Thread(target=till, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["refused"] * 5 + ["won"]
    assert balance_of(member_id) == 0
