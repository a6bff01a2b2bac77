"""Races on PostgreSQL with real threads: spends, earns, holds and expiry on one member."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, select

from app.common.clock import frozen
from app.db import transaction, unit_of_work
from app.extensions import db
from app.points.holds import hold_points, release_points
from app.points.jobs import expire_points
from app.points.models import PointsLotConsumption
from app.points.services import InsufficientPoints, balance_of, post_entry
from tests.conftest import requires_postgres
from tests.test_points_core import new_member
from tests.test_points_lots import assert_consistent, earn

END_2027 = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)


def race(app, workers: list[Callable[[], str]]) -> list[str]:
    """Start every worker at the same moment, each in its own app context and session."""
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(workers))

    def run(work: Callable[[], str]) -> None:
        with app.app_context():
            barrier.wait()
            try:
                outcome = work()
            except InsufficientPoints:
                outcome = "refused"
            finally:
                db.session.remove()
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def in_transaction(fn: Callable[[], object]) -> Callable[[], str]:
    def work() -> str:
        def attempt() -> None:
            with unit_of_work():
                fn()

        transaction(attempt)
        return "ok"

    return work


@requires_postgres
def test_concurrent_spends_across_lots_never_overspend_and_record_every_lot(app):
    member_id = new_member()
    with frozen(datetime(2026, 3, 1, tzinfo=UTC)):
        for i in range(4):
            earn(member_id, 25, f"seed{i}")  # four lots of 25
    spends = [
        in_transaction(
            lambda i=i: post_entry(member_id, -30, kind="redeem", idempotency_key=f"s{i}")
        )
        for i in range(8)
    ]
    earns = [
        in_transaction(lambda i=i: post_entry(member_id, 1, kind="earn", idempotency_key=f"e{i}"))
        for i in range(6)
    ]
    results = race(app, spends + earns)
    spent = results.count("ok") - 6
    assert spent == 3  # 106 covers three spends of 30 whatever the order, never four
    assert balance_of(member_id) == 106 - 90
    taken = db.session.scalar(select(func.sum(PointsLotConsumption.points)))
    assert taken == 90
    assert_consistent(member_id)


@requires_postgres
def test_holds_releases_and_an_expiry_run_racing_on_one_member_keep_the_lots_exact(app):
    member_id = new_member()
    with frozen(datetime(2026, 3, 1, tzinfo=UTC)):
        earn(member_id, 40, "old")  # expires at the end of 2027
    with frozen(datetime(2027, 6, 1, tzinfo=UTC)):
        earn(member_id, 60, "new")  # expires at the end of 2028
        with unit_of_work():
            hold_points(member_id, 30, hold_key="h0")  # takes 30 of the old lot
    workers = [in_transaction(lambda: release_points("h0"))]
    workers += [
        in_transaction(lambda i=i: hold_points(member_id, 20, hold_key=f"h{i}"))
        for i in range(1, 5)
    ]
    workers += [lambda: f"expired {expire_points(now=END_2027).points}" for _ in range(2)]
    with frozen(END_2027):
        results = race(app, workers)
    expired = sum(int(r.split()[1]) for r in results if r.startswith("expired"))
    holds = results.count("ok") - 1
    assert balance_of(member_id) == 100 - expired - 20 * holds
    assert balance_of(member_id) >= 0
    assert_consistent(member_id)
