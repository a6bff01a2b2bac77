"""Lots: spends take the soonest-expiring points, releases and merges keep expiries, debts."""

from datetime import UTC, datetime

from sqlalchemy import func, select

from app.common.clock import frozen
from app.db import unit_of_work
from app.extensions import db
from app.points.holds import capture_points, hold_points, release_points, return_redeemed_points
from app.points.lots import lot_differences
from app.points.models import PointsEntry, PointsLot, PointsLotConsumption
from app.points.services import audit_differences, balance_of, post_entry, transfer_on_merge
from tests.test_points_core import new_member

SPRING_2026 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
SPRING_2027 = datetime(2027, 3, 1, 4, 0, tzinfo=UTC)
END_2027 = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)  # 2028-01-01 00:00 in Shanghai
END_2028 = datetime(2028, 12, 31, 16, 0, tzinfo=UTC)


def assert_consistent(member_id: int, *, audit_all: bool = True) -> None:
    """Cached balance == sum of entries == remaining lots − debt; a debt leaves no lots."""
    balance = balance_of(member_id)
    entries = db.session.scalar(
        select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
            PointsEntry.member_id == member_id
        )
    )
    lots = list(db.session.scalars(select(PointsLot).where(PointsLot.member_id == member_id)))
    remaining = sum(lot.remaining for lot in lots)
    assert balance == entries
    assert remaining - max(0, -balance) == balance
    assert all(0 <= lot.remaining <= lot.points for lot in lots)
    if audit_all:
        assert audit_differences() == [] and lot_differences() == []


def earn(member_id: int, points: int, key: str) -> None:
    with unit_of_work():
        post_entry(member_id, points, kind="earn", idempotency_key=key)


def open_lots(member_id: int) -> list[tuple[int, datetime | None]]:
    lots = db.session.scalars(
        select(PointsLot)
        .where(PointsLot.member_id == member_id, PointsLot.remaining > 0)
        .order_by(PointsLot.expires_at, PointsLot.id)
    )
    return [(lot.remaining, lot.expires_at) for lot in lots]


def consumed_by(key: str) -> list[tuple[int, datetime | None]]:
    rows = db.session.execute(
        select(PointsLotConsumption.points, PointsLot.expires_at)
        .join(PointsLot, PointsLot.id == PointsLotConsumption.lot_id)
        .join(PointsEntry, PointsEntry.id == PointsLotConsumption.entry_id)
        .where(PointsEntry.idempotency_key == key)
        .order_by(PointsLotConsumption.id)
    ).all()
    return [(p, at) for p, at in rows]


def two_lots(member_id: int) -> None:
    """10 points expiring at the end of 2027, then 20 expiring at the end of 2028."""
    with frozen(SPRING_2026):
        earn(member_id, 10, "e1")
    with frozen(SPRING_2027):
        earn(member_id, 20, "e2")


def test_each_credit_becomes_a_lot_expiring_at_the_end_of_the_next_year():
    member_id = new_member()
    two_lots(member_id)
    assert open_lots(member_id) == [(10, END_2027), (20, END_2028)]
    assert_consistent(member_id)


def test_a_spend_takes_the_soonest_expiring_lots_first_and_records_them():
    member_id = new_member()
    two_lots(member_id)
    with frozen(SPRING_2027), unit_of_work():
        post_entry(member_id, -15, kind="redeem", idempotency_key="spend")
    assert consumed_by("spend") == [(10, END_2027), (5, END_2028)]
    assert open_lots(member_id) == [(15, END_2028)]
    assert_consistent(member_id)


def test_a_release_gives_back_the_lots_the_hold_took_with_their_expiries():
    member_id = new_member()
    two_lots(member_id)
    with frozen(SPRING_2027), unit_of_work():
        hold_points(member_id, 12, hold_key="h1")
    assert open_lots(member_id) == [(18, END_2028)]
    with frozen(datetime(2027, 6, 1, tzinfo=UTC)):
        for _ in range(2):
            with unit_of_work():
                release_points("h1")
    assert sorted(open_lots(member_id), key=lambda x: (x[1], x[0])) == [
        (10, END_2027),
        (2, END_2028),
        (18, END_2028),
    ]
    assert balance_of(member_id) == 30
    assert_consistent(member_id)


def test_a_merge_moves_the_lots_with_their_expiries_to_the_survivor():
    absorbed = new_member("13800000001")
    survivor = new_member("13800000002")
    two_lots(absorbed)
    with frozen(SPRING_2027):
        earn(survivor, 5, "s1")
        for _ in range(2):
            with unit_of_work():
                moved = transfer_on_merge(absorbed, survivor, merge_key="m1")
            assert moved == 30
    assert open_lots(absorbed) == []
    assert sorted(open_lots(survivor)) == [(5, END_2028), (10, END_2027), (20, END_2028)]
    assert_consistent(absorbed)
    assert_consistent(survivor)


def test_a_clawback_beyond_the_lots_leaves_a_debt_that_the_next_earnings_repay_first():
    member_id = new_member()
    with frozen(SPRING_2026):
        earn(member_id, 10, "e1")
        with unit_of_work():
            post_entry(member_id, -25, kind="clawback", idempotency_key="cb", allow_negative=True)
    assert balance_of(member_id) == -15 and open_lots(member_id) == []
    assert consumed_by("cb") == [(10, END_2027)]
    assert_consistent(member_id)
    with frozen(SPRING_2027):
        earn(member_id, 12, "e2")  # all of it repays the debt: nothing to spend yet
        assert balance_of(member_id) == -3 and open_lots(member_id) == []
        assert_consistent(member_id)
        earn(member_id, 8, "e3")  # 3 repay, 5 become a lot
    assert balance_of(member_id) == 5
    assert open_lots(member_id) == [(5, END_2028)]
    assert_consistent(member_id)


def test_a_debt_moves_with_a_merge_and_takes_from_the_survivors_lots():
    owing = new_member("13800000001")
    survivor = new_member("13800000002")
    with frozen(SPRING_2026):
        with unit_of_work():
            post_entry(owing, -7, kind="clawback", idempotency_key="cb", allow_negative=True)
        earn(survivor, 10, "s1")
        with unit_of_work():
            assert transfer_on_merge(owing, survivor, merge_key="m") == -7
    assert balance_of(owing) == 0 and balance_of(survivor) == 3
    assert open_lots(survivor) == [(3, END_2027)]
    assert_consistent(owing)
    assert_consistent(survivor)


def test_returns_give_back_redeemed_points_in_proportion_with_their_expiries():
    member_id = new_member()
    two_lots(member_id)
    with frozen(SPRING_2027), unit_of_work():
        hold_points(member_id, 20, hold_key="sale-1")  # 10 ending 2027, 10 ending 2028
        capture_points("sale-1")
    # a sale of 100.00 yuan; 30.00 returned, then the same return again, then 70.00 more
    with frozen(SPRING_2027):
        for returned, key in ((3000, "ret-1"), (3000, "ret-1"), (10000, "ret-2")):
            with unit_of_work():
                return_redeemed_points(
                    "sale-1", returned_fen=returned, sale_total_fen=10000, return_key=key
                )
            if key == "ret-1":
                assert balance_of(member_id) == 10 + 6  # floor(20 × 30%), latest expiry first
                assert sorted(open_lots(member_id)) == [(6, END_2028), (10, END_2028)]
    assert balance_of(member_id) == 30
    assert sorted(open_lots(member_id), key=lambda x: (x[1], x[0])) == [
        (10, END_2027),
        (4, END_2028),
        (6, END_2028),
        (10, END_2028),
    ]
    assert_consistent(member_id)


def _buy(member_id: int, external_id: str, paid_fen: int) -> None:
    from app.points.purchases import record_purchase

    with unit_of_work():
        record_purchase(
            source="wechat",
            external_id=external_id,
            member_id=member_id,
            store_id=None,
            paid_fen=paid_fen,
            occurred_at=SPRING_2027,
        )


def test_a_purchase_credit_repays_a_debt_first_like_any_other_credit():
    """``record_purchase`` credits through ``credit_points`` (set-based Core statements, no
    idempotency lookup): the same entries, debt repayment and lots as ``post_entry``."""
    member_id = new_member()
    with frozen(SPRING_2026):
        earn(member_id, 10, "e1")
        with unit_of_work():
            post_entry(member_id, -25, kind="clawback", idempotency_key="cb", allow_negative=True)
    with frozen(SPRING_2027):
        _buy(member_id, "tx-debt-1", 1200)  # 12 points, all repaying the debt
        assert balance_of(member_id) == -3 and open_lots(member_id) == []
        assert_consistent(member_id)
        _buy(member_id, "tx-debt-2", 899)  # 8 points: 3 repay, 5 become a lot
        _buy(member_id, "tx-debt-2", 899)  # a replay changes nothing
    assert balance_of(member_id) == 5
    assert open_lots(member_id) == [(5, END_2028)]
    entries = db.session.execute(
        select(PointsEntry.points, PointsEntry.balance_after, PointsEntry.idempotency_key)
        .where(PointsEntry.member_id == member_id, PointsEntry.kind == "earn")
        .order_by(PointsEntry.id)
    ).all()
    assert [(p, b) for p, b, _ in entries] == [(10, 10), (12, -3), (8, 5)]
    assert all(k.startswith("purchase:") for _, _, k in entries[1:])
    assert_consistent(member_id)


def test_a_new_credit_under_a_used_key_is_refused_by_the_database():
    import pytest
    from sqlalchemy.exc import IntegrityError

    from app.points.services import Credit, credit_points

    member_id = new_member()
    earn(member_id, 10, "used-key")
    with pytest.raises(IntegrityError), unit_of_work():
        credit_points([Credit(member_id, 5, "earn", "used-key")])
    assert balance_of(member_id) == 10
    assert_consistent(member_id)


def test_a_new_credit_leaves_no_stale_account_in_the_session():
    """The account is moved by a table-level UPDATE: a copy the transaction loaded earlier (a
    member created in the same transaction, as pay-as-membership does) is refreshed, not kept."""
    from app.members.services import create_member
    from app.points.models import PointsAccount
    from app.points.services import Credit, credit_points

    with unit_of_work():
        member = create_member(source="test", phone="13800000077")
        account = db.session.get(PointsAccount, member.id)
        assert account is not None and account.balance == 0
        [credited] = credit_points([Credit(member.id, 7, "earn", "fresh-1")])
        assert credited.balance_after == 7
        assert account.balance == 7  # reloaded after the UPDATE, not the stale 0
    assert_consistent(member.id)
