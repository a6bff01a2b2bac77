"""Expiry: the policy across year boundaries and time zones, the job, reminders, the CLI."""

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select, text

from app.common.clock import frozen
from app.config import Config, ConfigError
from app.db import unit_of_work
from app.extensions import db
from app.jobs.models import JobChunk
from app.members.models import Member
from app.points import jobs as points_jobs
from app.points.expiry import parse_policy
from app.points.jobs import expire_points, members_with_points_expiring
from app.points.lots import lot_differences
from app.points.models import PointsEntry, PointsLot, PointsLotConsumption
from app.points.services import audit_differences, balance_of, post_entry
from tests.conftest import requires_postgres
from tests.test_points_core import new_member
from tests.test_points_lots import assert_consistent, earn, open_lots

SHANGHAI_NEW_YEAR_2027 = datetime(2026, 12, 31, 16, 0, tzinfo=UTC)  # 2027-01-01 00:00 +08
END_2027 = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)
END_2028 = datetime(2028, 12, 31, 16, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_points_earned_on_new_years_eve_in_shanghai_count_to_that_year():
    policy = parse_policy("year_end_next")
    # 23:59:59 on 31 December 2026 in Shanghai is still 2026 there: expires end of 2027
    assert policy.expires_at(SHANGHAI_NEW_YEAR_2027 - SECOND) == END_2027
    # one second later it is 2027 in Shanghai (still 2026 in UTC): expires end of 2028
    assert policy.expires_at(SHANGHAI_NEW_YEAR_2027) == END_2028
    # the same instant written with another offset gives the same answer
    new_york = SHANGHAI_NEW_YEAR_2027.astimezone(timezone(timedelta(hours=-5)))
    assert new_york.year == 2026 and policy.expires_at(new_york) == END_2028


def test_months_policy_clamps_to_the_end_of_the_month_and_never_means_none():
    jan_31 = datetime(2027, 1, 31, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    assert parse_policy("months:1").expires_at(jan_31) == datetime(2027, 2, 28, 2, 0, tzinfo=UTC)
    assert parse_policy("months:13").expires_at(jan_31) == datetime(2028, 2, 29, 2, 0, tzinfo=UTC)
    assert parse_policy("never").expires_at(jan_31) is None


@pytest.mark.parametrize("value", ["", "months:0", "months:x", "yearly", "months:-1"])
def test_an_unknown_expiry_policy_stops_start_up(value):
    with pytest.raises(ConfigError, match="POINTS_EXPIRY"):
        Config.from_env(env={"POINTS_EXPIRY": value or " "})


def test_lots_expire_exactly_at_the_shanghai_year_end_and_only_once():
    member_id = new_member()
    with frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        earn(member_id, 30, "e1")
        with unit_of_work():
            post_entry(member_id, -10, kind="redeem", idempotency_key="r1")
    with frozen(datetime(2027, 2, 1, tzinfo=UTC)):
        earn(member_id, 7, "e2")
    run = expire_points(now=END_2027 - SECOND)
    assert run.points == 0 and balance_of(member_id) == 27
    with frozen(END_2027):
        first = expire_points(batch_size=1)
        second = expire_points()
    assert (first.members, first.lots, first.points) == (1, 1, 20)
    assert second.points == 0
    assert balance_of(member_id) == 7
    assert open_lots(member_id) == [(7, END_2028)]
    expired = db.session.scalars(select(PointsEntry).where(PointsEntry.kind == "expire")).all()
    assert [e.points for e in expired] == [-20]
    assert_consistent(member_id)


def test_an_expiry_run_goes_through_every_member_in_batches():
    members = [new_member(f"1380000000{i}") for i in range(5)]
    with frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        for m in members:
            earn(m, 3, f"e{m}")
    run = expire_points(now=END_2027, batch_size=2)
    assert (run.members, run.lots, run.points) == (5, 5, 15)
    assert all(balance_of(m) == 0 for m in members)


def test_the_reminder_lists_members_whose_points_expire_within_30_days_and_only_those():
    soon, later, opted_out = (new_member(f"1380000000{i}") for i in range(3))
    with frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        earn(soon, 12, "a")
        earn(opted_out, 4, "c")
    with frozen(datetime(2027, 6, 1, tzinfo=UTC)):
        earn(soon, 5, "a2")
        earn(later, 9, "b")
    with unit_of_work():
        db.session.get(Member, opted_out).marketing_opt_out = True
    rows = members_with_points_expiring(30, now=END_2027 - timedelta(days=29))
    assert [(r.member_id, r.points, r.expires_at) for r in rows] == [
        (soon, 12, END_2027),
        (opted_out, 4, END_2027),
    ]
    assert members_with_points_expiring(30, now=END_2027 - timedelta(days=31)) == []
    marketing = members_with_points_expiring(
        30, now=END_2027 - timedelta(days=1), exclude_opted_out=True
    )
    assert [r.member_id for r in marketing] == [soon]


def test_the_cli_expires_lists_and_audits(app):
    member_id = new_member()
    with frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        earn(member_id, 30, "e1")
    runner = app.test_cli_runner()
    with frozen(END_2027 - timedelta(days=3)):
        listed = runner.invoke(args=["points", "expiring"])
        assert listed.exit_code == 0 and f"{member_id}\t30\t" in listed.output
    with frozen(END_2027):
        result = runner.invoke(args=["points", "expire"])
    assert result.exit_code == 0 and "expired 30 points in 1 lots" in result.output
    audit = runner.invoke(args=["points", "audit"])
    assert audit.exit_code == 0, audit.output
    db.session.remove()
    with db.engine.begin() as conn:  # break a lot behind the ledger's back
        conn.execute(text("UPDATE points_lots SET remaining = remaining + 1"))
    broken = runner.invoke(args=["points", "audit"])
    assert broken.exit_code == 1 and f"member {member_id}: balance 0 but lots hold" in broken.output


@requires_postgres
def test_concurrent_expiry_runs_expire_each_lot_once(app):
    members = [new_member(f"138000000{i:02d}") for i in range(12)]
    with frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        for m in members:
            earn(m, 10, f"e{m}")
    totals: list[int] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        with app.app_context():
            barrier.wait()
            totals.append(expire_points(now=END_2027, batch_size=3).points)
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(totals) == 120
    assert all(balance_of(m) == 0 for m in members)
    expired = db.session.scalars(select(PointsEntry).where(PointsEntry.kind == "expire")).all()
    assert len(expired) == 12
    for m in members:
        assert_consistent(m)


def _history(member_id: int, i: int) -> None:
    """Lots due at two year ends, one partly spent, one not due yet (``i`` varies amounts)."""
    with frozen(datetime(2026, 2, 1, tzinfo=UTC)):
        with unit_of_work():
            post_entry(
                member_id,
                5 + i,
                kind="earn",
                idempotency_key=f"old:{member_id}",
                earned_at=datetime(2025, 5, 1, tzinfo=UTC),  # expires at the end of 2026
            )
        earn(member_id, 10 + i, f"a:{member_id}")
    with frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        earn(member_id, 20, f"b:{member_id}")
        with unit_of_work():  # takes the lot of 2025 and part of the next one
            post_entry(member_id, -(7 + i % 3), kind="redeem", idempotency_key=f"r:{member_id}")
        earn(member_id, 3 + i, f"c:{member_id}")
    with frozen(datetime(2027, 3, 1, tzinfo=UTC)):
        earn(member_id, 9, f"d:{member_id}")  # due at the end of 2028 only


def _ledger_of(member_id: int) -> dict:
    """A member's ledger, lots, consumptions and balance, with ids replaced by positions."""
    lots = db.session.scalars(
        select(PointsLot).where(PointsLot.member_id == member_id).order_by(PointsLot.id)
    ).all()
    lot_pos = {lot.id: n for n, lot in enumerate(lots)}
    entries = db.session.scalars(
        select(PointsEntry).where(PointsEntry.member_id == member_id).order_by(PointsEntry.id)
    ).all()
    entry_pos = {e.id: n for n, e in enumerate(entries)}

    def ref(e: PointsEntry) -> str | None:
        return f"lot#{lot_pos[int(e.ref_id)]}" if e.ref_type == "lot" else None

    consumptions = db.session.execute(
        select(
            PointsLotConsumption.entry_id, PointsLotConsumption.lot_id, PointsLotConsumption.points
        ).where(PointsLotConsumption.lot_id.in_(list(lot_pos)))
    ).all()
    return {
        "entries": [
            (e.kind, e.points, e.balance_after, ref(e), e.reason, e.created_at) for e in entries
        ],
        "expire_keys_name_their_lot": all(
            e.idempotency_key == f"expire:lot:{e.ref_id}" for e in entries if e.kind == "expire"
        ),
        "lots": [(lot.points, lot.remaining, lot.expires_at) for lot in lots],
        "consumptions": sorted((entry_pos[e], lot_pos[lot], p) for e, lot, p in consumptions),
        "balance": balance_of(member_id),
    }


def _expire_lot_by_lot(member_id: int, now: datetime) -> tuple[int, int]:
    """The reference: a member's due lots expired one ``post_entry`` at a time, soonest first."""
    due = db.session.scalars(
        select(PointsLot)
        .where(PointsLot.member_id == member_id, PointsLot.remaining > 0)
        .where(PointsLot.expires_at <= now)
        .order_by(PointsLot.expires_at, PointsLot.id)
    ).all()
    points = 0
    for lot in due:
        amount = lot.remaining
        post_entry(
            member_id,
            -amount,
            kind="expire",
            idempotency_key=f"expire:lot:{lot.id}",
            ref_type="lot",
            ref_id=str(lot.id),
            from_lot=lot.id,
            reason=f"points expired at {lot.expires_at.isoformat()}",
        )
        points += amount
    return len(due), points


@pytest.mark.parametrize("slice_lots", [2000, 2])
def test_a_chunk_of_many_members_expires_exactly_as_one_lot_at_a_time_would(
    slice_lots, monkeypatch
):
    # a slice of 2 lots splits members' lots across the chunk's slices
    monkeypatch.setattr(points_jobs, "SLICE_LOTS", slice_lots)
    alone = [new_member(f"1370000{i:04d}") for i in range(8)]
    chunked = [new_member(f"1360000{i:04d}") for i in range(8)]
    for i, (a, c) in enumerate(zip(alone, chunked, strict=True)):
        _history(a, i)
        _history(c, i)
    with frozen(END_2027):
        reference = [0, 0]
        for a in alone:
            with unit_of_work():
                lots, points = _expire_lot_by_lot(a, END_2027)
            reference = [reference[0] + lots, reference[1] + points]
        # the chunked members' due lots: three or four each (two year ends), in one chunk
        run = expire_points(batch_size=100)
    assert (run.members, run.lots, run.points) == (8, *reference)
    assert run.lots >= 3 * 8  # several lots per member
    chunks = db.session.scalars(select(JobChunk.size)).all()
    assert chunks == [8]  # the alone members had nothing left: one chunk of 8
    for a, c in zip(alone, chunked, strict=True):
        assert _ledger_of(c) == _ledger_of(a)
        assert _ledger_of(c)["expire_keys_name_their_lot"]
        assert open_lots(c) == [(9, END_2028)]
        assert_consistent(c, audit_all=False)
    assert audit_differences() == [] and lot_differences() == []
    with frozen(END_2027):  # a second run finds nothing to expire
        assert expire_points().lots == 0


def _statements_of_an_expiry(
    members: int, lots_each: int, prefix: str, earned: datetime, now: datetime
) -> list[str]:
    ids = [new_member(f"{prefix}{i:04d}") for i in range(members)]
    with frozen(earned):
        for m in ids:
            for k in range(lots_each):
                earn(m, 1 + k, f"s{k}:{m}")
    db.session.remove()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        run = expire_points(now=now, batch_size=1000)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert run.lots == members * lots_each
    return statements


def test_an_expiry_chunk_sends_as_many_statements_for_120_lots_as_for_15():
    few = _statements_of_an_expiry(5, 3, "1350000", datetime(2026, 6, 1, tzinfo=UTC), END_2027)
    many = _statements_of_an_expiry(40, 3, "1340000", datetime(2027, 6, 1, tzinfo=UTC), END_2028)
    assert len(many) == len(few)
    # per chunk: the job's own bookkeeping, the locks, one read of the due lots, then a
    # handful of set-based statements: fewer than one per lot
    assert len(many) < 120


def test_a_members_many_due_lots_expire_with_one_balance_write_per_chunk():
    one = _statements_of_an_expiry(3, 1, "1330000", datetime(2026, 6, 1, tzinfo=UTC), END_2027)
    eight = _statements_of_an_expiry(3, 8, "1320000", datetime(2027, 6, 1, tzinfo=UTC), END_2028)
    # a member's debits of named lots share one wave: eight lots each cost no more statements
    # than one, and each account is written once, not once per lot
    assert len(eight) == len(one)
    moves = [s for s in eight if "UPDATE POINTS_ACCOUNTS" in s.upper()]
    assert len(moves) == 1
