"""Property: random sequences of ledger operations keep every invariant, and replays are no-ops.

After every step: cached balance == sum of entries == remaining lots − debt for every member;
a debit's recorded lots add up to what it took; no balance goes (further) below zero except
through a clawback or a merge carrying a debt; running the same step again changes nothing.
"""

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import case, func, select

from app.common.clock import advance, frozen
from app.db import unit_of_work
from app.errors import Conflict
from app.extensions import db
from app.members.models import Member
from app.points.holds import capture_points, hold_points, release_points
from app.points.jobs import expire_points
from app.points.models import PointsAccount, PointsEntry, PointsLot, PointsLotConsumption
from app.points.services import InsufficientPoints, balance_of, post_entry, transfer_on_merge
from tests.conftest import on_postgres
from tests.test_points_core import new_member

_phones = itertools.count(1)
START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)

who = st.integers(0, 2)
amount = st.integers(1, 60)
share = st.integers(1, 120)  # percent of the balance (over 100: more than there is)
operations = st.one_of(
    st.tuples(st.just("earn"), who, amount),
    st.tuples(st.just("spend"), who, share),
    st.tuples(st.just("hold"), who, share),
    st.tuples(st.just("hold"), who, share),
    st.tuples(st.just("release"), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("capture"), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("clawback"), who, amount),
    st.tuples(st.just("expire"), st.integers(100, 900), st.just(0)),
    st.tuples(st.just("merge"), who, who),
)


class Run:
    def __init__(self) -> None:
        self.members = [new_member(f"139{next(_phones):08d}") for _ in range(3)]
        self.tag = f"p{self.members[0]}"
        self.survivor: dict[int, int] = {}
        self.holds: list[str] = []
        self.amounts: dict[str, int] = {}
        for member_id in self.members:  # something to spend from the start
            with unit_of_work():
                post_entry(
                    member_id, 50, kind="earn", idempotency_key=f"{self.tag}:seed:{member_id}"
                )

    def live(self, index: int) -> int:
        member_id = self.members[index]
        while member_id in self.survivor:
            member_id = self.survivor[member_id]
        return member_id

    def apply(self, step: int, op: tuple[str, int, int]) -> None:
        kind, a, b = op
        key = f"{self.tag}:{step}"
        if kind == "expire":
            expire_points()
            return
        try:
            with unit_of_work():
                self._apply(kind, a, b, key)
        except (InsufficientPoints, Conflict):
            pass  # a refused step changes nothing, which the checks confirm

    def _apply(self, kind: str, a: int, b: int, key: str) -> None:
        if kind in ("spend", "hold"):  # a share of the balance, fixed at the first try
            b = self.amounts.setdefault(key, max(1, balance_of(self.live(a)) * b // 100))
        if kind == "earn":
            post_entry(self.live(a), b, kind="earn", idempotency_key=key)
        elif kind == "spend":
            post_entry(self.live(a), -b, kind="redeem", idempotency_key=key)
        elif kind == "clawback":
            post_entry(self.live(a), -b, kind="clawback", idempotency_key=key, allow_negative=True)
        elif kind == "hold":
            hold_points(self.live(a), b, hold_key=key)
            if key not in self.holds:
                self.holds.append(key)
        elif kind in ("release", "capture") and self.holds:
            hold_key = self.holds[-1 - a % len(self.holds)]
            (release_points if kind == "release" else capture_points)(hold_key)
        elif kind == "merge":
            absorbed, survivor = self.live(a), self.live(b)
            if absorbed == survivor:
                return
            transfer_on_merge(absorbed, survivor, merge_key=key)
            member = db.session.get(Member, absorbed)
            member.merged_into_id, member.status = survivor, "merged"
            self.survivor[absorbed] = survivor

    def snapshot(self) -> tuple:
        db.session.expire_all()
        balances = dict(
            db.session.execute(
                select(PointsAccount.member_id, PointsAccount.balance).where(
                    PointsAccount.member_id.in_(self.members)
                )
            ).all()
        )
        lots = db.session.execute(
            select(PointsLot.id, PointsLot.remaining).where(PointsLot.member_id.in_(self.members))
        ).all()
        entries = db.session.scalar(
            select(func.count()).where(PointsEntry.member_id.in_(self.members))
        )
        return tuple(balances[m] for m in self.members), entries, sorted(lots)

    def check(self) -> None:
        """balance == Σ entries == Σ remaining lots − debt, a debt leaves no lots, per member."""
        mine = PointsAccount.member_id.in_(self.members)
        entries = dict(
            db.session.execute(
                select(PointsEntry.member_id, func.sum(PointsEntry.points))
                .where(PointsEntry.member_id.in_(self.members))
                .group_by(PointsEntry.member_id)
            ).all()
        )
        lots = {
            m: (int(remaining), int(bad))
            for m, remaining, bad in db.session.execute(
                select(
                    PointsLot.member_id,
                    func.sum(PointsLot.remaining),
                    func.sum(
                        case(
                            (PointsLot.remaining < 0, 1),
                            (PointsLot.remaining > PointsLot.points, 1),
                            else_=0,
                        )
                    ),
                )
                .where(PointsLot.member_id.in_(self.members))
                .group_by(PointsLot.member_id)
            ).all()
        }
        for member_id, balance in db.session.execute(
            select(PointsAccount.member_id, PointsAccount.balance).where(mine)
        ).all():
            remaining, bad = lots.get(member_id, (0, 0))
            assert balance == entries.get(member_id, 0)
            assert remaining - max(0, -balance) == balance
            assert bad == 0
        taken = (
            select(
                PointsLotConsumption.entry_id,
                func.sum(PointsLotConsumption.points).label("points"),
            )
            .join(PointsEntry, PointsEntry.id == PointsLotConsumption.entry_id)
            .where(PointsEntry.member_id.in_(self.members))
            .group_by(PointsLotConsumption.entry_id)
            .subquery()
        )
        debits = db.session.execute(
            select(PointsEntry.points, PointsEntry.balance_after, func.coalesce(taken.c.points, 0))
            .outerjoin(taken, taken.c.entry_id == PointsEntry.id)
            .where(PointsEntry.member_id.in_(self.members), PointsEntry.points < 0)
        ).all()
        for points, balance_after, took in debits:
            before = balance_after - points
            assert took == min(-points, max(0, before))


@settings(
    max_examples=12 if on_postgres() else 30,  # each step commits: PostgreSQL pays fsyncs
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operations, min_size=6, max_size=16))
def test_random_ledger_histories_keep_every_invariant_and_replays_change_nothing(ops):
    run = Run()
    with frozen(START):
        for step, op in enumerate(ops):
            if op[0] == "expire":
                advance(timedelta(days=op[1]))
            before = run.snapshot()
            run.apply(step, op)
            after = run.snapshot()
            run.check()
            if op[0] not in ("clawback", "merge"):
                for old, new in zip(before[0], after[0], strict=True):
                    assert new >= 0 or new >= old, (op, old, new)
            event(f"{op[0]} {'applied' if after != before else 'refused'}")
            run.apply(step, op)  # the same step again: no effect
            assert run.snapshot() == after, op
