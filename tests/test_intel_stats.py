"""Member stats, lifecycle stages and RFM on a small brand with hand-computed figures.

Today is 2026-11-23 (Shanghai). Thresholds: honeymoon 60 days, active ≤ 30, silent ≤ 90,
sleeping ≤ 180, lost beyond. The 12-month window is 2025-12 … 2026-11.

| member | purchases (store, yuan)                          | stage    | R F M | label        |
|--------|--------------------------------------------------|----------|-------|--------------|
| m1     | 10-01 B 30, 11-10 A 50, 11-20 A 100              | active   | 5 5 3 | 重要价值客户 |
| m2     | 08-01 B 100, 09-01 B 200 (83 days)               | silent   | 3 3 4 | 重要价值客户 |
| m3     | 11-01 A 20 (one purchase, in honeymoon)          | new      | 4 1 1 | 一般发展客户 |
| m4     | 06-01 A 500 (one purchase, 175 days)             | sleeping | 2 1 5 | 重要挽留客户 |
| m5     | 2025-12-01 B 80, 2025-12-05 B 80 (353 days)      | lost     | 1 3 2 | 一般保持客户 |
| m6     | none                                             | new      | —     | —            |

Scores: ``1 + floor(5 × less / n)`` with n = 5 members with a purchase in 12 months.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.common.clock import frozen
from app.db import unit_of_work
from app.extensions import db
from app.intel import services
from app.intel.jobs import nightly
from app.intel.models import LifecycleEvent, MemberStats, MemberStoreMonth
from app.members.merge import lock_members, merge_members
from tests.intel_support import at, buy, member, refund, store

TODAY = at(2026, 11, 23)


@pytest.fixture
def brand() -> dict[str, int]:
    a, b = store("A"), store("B")
    m = {f"m{i}": member(at(2025, 6, 1), store_id=a) for i in range(1, 7)}
    for who, when, where, yuan in [
        ("m1", at(2026, 10, 1), b, 30),
        ("m1", at(2026, 11, 10), a, 50),
        ("m1", at(2026, 11, 20), a, 100),
        ("m2", at(2026, 8, 1), b, 100),
        ("m2", at(2026, 9, 1), b, 200),
        ("m3", at(2026, 11, 1), a, 20),
        ("m4", at(2026, 6, 1), a, 500),
        ("m5", at(2025, 12, 1), b, 80),
        ("m5", at(2025, 12, 5), b, 80),
    ]:
        buy(m[who], where, yuan * 100, when)
    return {"A": a, "B": b, **m}


def stats(member_id: int) -> MemberStats:
    db.session.expire_all()
    return db.session.get(MemberStats, member_id)


def test_stats_are_kept_as_purchases_arrive(brand):
    s1 = stats(brand["m1"])
    assert (s1.purchase_count, s1.payer_fen_total, s1.purchases_12m, s1.payer_fen_12m) == (
        3,
        18000,
        3,
        18000,
    )
    assert s1.first_purchase_at == at(2026, 10, 1)
    assert s1.last_purchase_at == at(2026, 11, 20)
    assert (s1.home_store_id, s1.last_store_id) == (brand["A"], brand["A"])
    s2 = stats(brand["m2"])
    assert (s2.purchase_count, s2.payer_fen_total, s2.home_store_id) == (2, 30000, brand["B"])
    s6 = stats(brand["m6"])
    assert (s6.purchase_count, s6.first_purchase_at, s6.home_store_id) == (0, None, None)
    assert s6.join_channel == "pos" and s6.join_store_id == brand["A"]


def test_home_store_is_most_visits_in_twelve_months_not_lifetime(brand):
    # three old visits at B (more than 12 months ago), two recent at A
    m = member(at(2024, 1, 1))
    for day in (1, 2, 3):
        buy(m, brand["B"], 1000, at(2025, 1, day))
    buy(m, brand["A"], 1000, at(2026, 11, 1))
    buy(m, brand["A"], 1000, at(2026, 11, 2))
    s = stats(m)
    assert (s.home_store_id, s.purchases_12m, s.payer_fen_12m, s.purchase_count) == (
        brand["A"],
        2,
        2000,
        5,
    )


def test_a_refund_takes_back_payer_money_but_not_the_visit(brand):
    sale = buy(brand["m6"], brand["A"], 5000, at(2026, 11, 22))
    refund(sale, 2000, at(2026, 11, 23))
    s = stats(brand["m6"])
    assert (s.purchase_count, s.payer_fen_total, s.payer_fen_12m) == (1, 3000, 3000)


def test_a_purchase_sets_the_stage_at_once(brand):
    expected = {"m1": "active", "m2": "silent", "m3": "new", "m4": "sleeping", "m5": "lost"}
    # each member's stage as of their own last purchase's recording: m4 and m5 were "new"
    # (one purchase) or active then; run the day's job to see today's stages
    with frozen(TODAY):
        nightly()
    assert {k: stats(brand[k]).lifecycle for k in expected} == expected
    assert stats(brand["m6"]).lifecycle == "new"
    # m2 buys today: active at once, and the move is an event
    buy(brand["m2"], brand["A"], 100, TODAY)
    assert stats(brand["m2"]).lifecycle == "active"
    moves = db.session.scalars(
        select(LifecycleEvent.to_stage)
        .where(LifecycleEvent.member_id == brand["m2"])
        .order_by(LifecycleEvent.id)
    ).all()
    assert moves[-2:] == ["silent", "active"]


def test_the_daily_job_moves_stages_with_time_and_records_each_move(brand):
    with frozen(TODAY):
        nightly()
    before = db.session.query(LifecycleEvent).count()
    with frozen(TODAY + timedelta(days=10)):
        result = nightly()
    # m2: 93 days → sleeping; m4: 185 days → lost; m3: 32 days, still in honeymoon → new
    assert result["stage_moves"] == 2
    assert stats(brand["m2"]).lifecycle == "sleeping"
    assert stats(brand["m4"]).lifecycle == "lost"
    assert stats(brand["m3"]).lifecycle == "new"
    assert stats(brand["m1"]).lifecycle == "active"
    assert db.session.query(LifecycleEvent).count() == before + 2
    with frozen(TODAY + timedelta(days=10)):
        assert nightly()["stage_moves"] == 0  # a re-run changes nothing


def test_thresholds_are_brand_settings(brand):
    services.update_settings({"active_days": 10, "silent_days": 20, "sleeping_days": 400})
    with frozen(TODAY):
        nightly()
    assert stats(brand["m1"]).lifecycle == "active"  # 3 days
    assert stats(brand["m2"]).lifecycle == "sleeping"  # 83 days
    assert stats(brand["m5"]).lifecycle == "sleeping"  # 353 days


def test_rfm_scores_and_labels_by_quintile(brand):
    with frozen(TODAY):
        result = nightly()
    assert result["rfm_members"] == 5
    got = {
        k: (s.r_score, s.f_score, s.m_score, s.rfm_label)
        for k in ("m1", "m2", "m3", "m4", "m5", "m6")
        for s in [stats(brand[k])]
    }
    assert got == {
        "m1": (5, 5, 3, "重要价值客户"),
        "m2": (3, 3, 4, "重要价值客户"),
        "m3": (4, 1, 1, "一般发展客户"),
        "m4": (2, 1, 5, "重要挽留客户"),
        "m5": (1, 3, 2, "一般保持客户"),
        "m6": (None, None, None, None),
    }


def test_the_twelve_month_window_rolls_at_the_month_boundary(brand):
    # on 2027-01-02 the window is 2026-02 … 2027-01: m5's December 2025 visits drop out
    with frozen(at(2027, 1, 2)):
        result = nightly()
    s5 = stats(brand["m5"])
    assert (s5.purchases_12m, s5.payer_fen_12m, s5.r_score) == (0, 0, None)
    assert result["rfm_members"] == 4
    assert stats(brand["m1"]).payer_fen_12m == 18000


def test_a_merge_combines_both_members_stats(brand):
    with unit_of_work():
        locked = lock_members(brand["m1"], brand["m3"])
        merge_members(locked[brand["m3"]], locked[brand["m1"]], reason="test")
    s = stats(brand["m1"])
    assert (s.purchase_count, s.payer_fen_total, s.payer_fen_12m) == (4, 20000, 20000)
    assert s.first_purchase_at == at(2026, 10, 1)
    assert db.session.get(MemberStats, brand["m3"]) is None
    months = db.session.scalars(
        select(MemberStoreMonth).where(MemberStoreMonth.member_id == brand["m3"])
    ).all()
    assert months == []
    assert s.home_store_id == brand["A"]


def test_hq_member_views_carry_lifecycle_rfm_and_stats(client, admin_headers, brand):
    with frozen(TODAY):
        nightly()
    member = client.get(f"/admin/v1/members/{brand['m1']}", headers=admin_headers).get_json()
    assert member["lifecycle"] == "active"
    assert member["rfm"] == {"r": 5, "f": 5, "m": 3, "label": "重要价值客户"}
    fresh = client.get(f"/admin/v1/members/{brand['m6']}", headers=admin_headers).get_json()
    assert (fresh["lifecycle"], fresh["rfm"]) == ("new", None)
    stats_view = client.get(
        f"/admin/v1/members/{brand['m2']}/stats", headers=admin_headers
    ).get_json()
    assert stats_view["payer_fen_12m"] == 30000 and stats_view["home_store_id"] == brand["B"]
    assert stats_view["lifecycle"] == "silent"


def test_lifecycle_settings_endpoint(client, admin_headers):
    got = client.get("/admin/v1/intel/settings", headers=admin_headers).get_json()
    assert got == {"honeymoon_days": 60, "active_days": 30, "silent_days": 90, "sleeping_days": 180}
    changed = client.put(
        "/admin/v1/intel/settings", json={"active_days": 45}, headers=admin_headers
    ).get_json()
    assert changed["active_days"] == 45 and changed["silent_days"] == 90
    bad = client.put("/admin/v1/intel/settings", json={"silent_days": 20}, headers=admin_headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "INVALID_THRESHOLDS"


def test_rebuild_gives_the_stats_the_listeners_keep_for_purchases_made_before_them(brand):
    from app.common.hooks import PURCHASES_APPLIED
    from app.intel.jobs import rebuild_stats

    sale = buy(brand["m6"], brand["B"], 4000, at(2026, 11, 2))
    refund(sale, 1000, at(2026, 11, 3))
    kept = {k: _figures(stats(brand[k])) for k in ("m1", "m2", "m6")}
    PURCHASES_APPLIED.unregister(services.on_purchases_applied)
    try:  # history recorded before stats were kept
        old = member(at(2025, 1, 1))
        buy(old, brand["A"], 1000, at(2026, 3, 1))
        buy(old, brand["A"], 2000, at(2026, 4, 1))
    finally:
        PURCHASES_APPLIED.register(services.on_purchases_applied)
    with unit_of_work():  # and stats that drifted
        db.session.get(MemberStats, brand["m1"]).purchase_count = 99
    with frozen(TODAY):
        assert rebuild_stats(chunk=3)["members"] == 7
    assert {k: _figures(stats(brand[k])) for k in ("m1", "m2", "m6")} == kept
    s = stats(old)
    assert (s.purchase_count, s.payer_fen_12m, s.home_store_id) == (2, 3000, brand["A"])
    assert s.lifecycle == "lost"  # 236 days since 2026-04-01


def _figures(s: MemberStats) -> tuple:
    return (
        s.purchase_count,
        s.payer_fen_total,
        s.purchases_12m,
        s.payer_fen_12m,
        s.first_purchase_at,
        s.last_purchase_at,
        s.last_store_id,
        s.home_store_id,
    )


def _months_of(member_id: int) -> list[tuple]:
    return sorted(
        db.session.execute(
            select(
                MemberStoreMonth.store_id,
                MemberStoreMonth.month,
                MemberStoreMonth.visits,
                MemberStoreMonth.payer_fen,
            ).where(MemberStoreMonth.member_id == member_id)
        ).all()
    )


def test_rebuild_in_chunks_gives_hand_computed_stats_from_the_purchases_alone(brand):
    """Stats and monthly rows wiped, then rebuilt set-based in chunks of two members: the same
    figures the listeners kept, and for a member who bought at Shanghai month edges (a sale at
    04:00 on 1 October is October's, though UTC still says 30 September; a refund counts on its
    own month) the hand-computed ones."""
    from datetime import UTC, datetime

    from sqlalchemy import delete

    from app.intel.jobs import rebuild_stats
    from app.jobs.models import JobChunk

    edge = member(at(2025, 6, 1), store_id=brand["A"])
    first = buy(edge, brand["A"], 10000, datetime(2026, 9, 30, 20, tzinfo=UTC))  # 10-01 04:00
    buy(edge, brand["B"], 4000, datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC))  # 10-31 23:59
    refund(first, 3000, at(2026, 11, 2))
    with frozen(TODAY):
        nightly()
    names = ("m1", "m2", "m3", "m4", "m5", "m6")
    kept = {k: _figures(stats(brand[k])) for k in names}
    kept_stages = {k: stats(brand[k]).lifecycle for k in names}
    kept_months = {k: _months_of(brand[k]) for k in names}
    with unit_of_work():
        db.session.execute(delete(MemberStoreMonth))
        db.session.execute(delete(MemberStats))

    with frozen(TODAY):
        assert rebuild_stats(chunk=2, run_key="rebuild-1")["members"] == 7
    chunks = db.session.scalars(select(JobChunk.size).where(JobChunk.status == "done")).all()
    assert sorted(chunks) == [1, 2, 2, 2]  # 7 members, chunks of 2

    assert {k: _figures(stats(brand[k])) for k in names} == kept
    assert {k: stats(brand[k]).lifecycle for k in names} == kept_stages
    assert {k: _months_of(brand[k]) for k in names} == kept_months
    s = stats(edge)
    assert (s.purchase_count, s.payer_fen_total) == (2, 11000)  # 100 + 40 − 30 yuan
    assert (s.first_purchase_at, s.last_purchase_at, s.last_store_id) == (
        datetime(2026, 9, 30, 20, tzinfo=UTC),
        datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC),
        brand["B"],
    )
    # A: one visit, 100 − 30 yuan; B: one visit, 40 yuan: ties on visits, A has more money
    assert (s.purchases_12m, s.payer_fen_12m, s.home_store_id) == (2, 11000, brand["A"])
    assert s.lifecycle == "active"  # 23 days since the last purchase
    oct_, nov = services.month_of(at(2026, 10, 1)), services.month_of(at(2026, 11, 1))
    assert _months_of(edge) == sorted(
        [(brand["A"], oct_, 1, 10000), (brand["B"], oct_, 1, 4000), (brand["A"], nov, 0, -3000)]
    )


def test_rebuild_writes_no_row_whose_stats_are_right_and_resumes_after_a_kill(brand):
    """A rebuild of right stats writes no row (no stage event either); a run killed
    after its first chunk and started again with its run key carries on and repairs the drift
    in the chunks after it."""
    import pytest as _pytest

    from app.intel.jobs import REBUILD, rebuild_stats
    from app.jobs.chunked import ChunkedJob, Step, run_chunked

    with frozen(TODAY):
        nightly()
    names = ("m1", "m2", "m3", "m4", "m5", "m6")
    kept = {k: _figures(stats(brand[k])) for k in names}
    events = db.session.scalar(select(func.count()).select_from(LifecycleEvent))
    with frozen(TODAY):
        assert rebuild_stats(chunk=2) == {"members": 6, "row_writes": 0, "stage_moves": 0}
    assert db.session.scalar(select(func.count()).select_from(LifecycleEvent)) == events
    assert {k: _figures(stats(brand[k])) for k in names} == kept

    with unit_of_work():  # drift in the last member's row
        db.session.get(MemberStats, brand["m6"]).purchase_count = 5
    calls = [0]
    step = REBUILD.steps[0]

    class Killed(Exception):
        pass

    def run(now, lo, hi):
        calls[0] += 1
        if calls[0] > 1:
            raise Killed
        return step.run(now, lo, hi)

    killed = ChunkedJob(REBUILD.name, (Step(step.name, run, keys=step.keys),), 2, REBUILD.counters)
    with frozen(TODAY), _pytest.raises(Killed):
        run_chunked(killed, now=TODAY, run_key="r2", chunk_size=2)
    assert stats(brand["m6"]).purchase_count == 5  # its chunk was not done
    with frozen(TODAY):
        # the whole run's counts: the first chunk's (before the kill) and the others'
        assert rebuild_stats(run_key="r2") == {"members": 6, "row_writes": 1, "stage_moves": 0}
    assert {k: _figures(stats(brand[k])) for k in names} == kept
