"""Long jobs (``app.jobs.chunked``): killed and restarted, two runners at once, progress."""

import os
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from app.common.clock import frozen
from app.extensions import db
from app.intel.nightly import NIGHTLY
from app.jobs.chunked import ON_PROGRESS, ChunkedJob, Step, figures, run_chunked
from app.jobs.models import JobChunk, JobProgress
from app.points.jobs import EXPIRY, expire_points
from app.points.models import PointsEntry
from app.points.services import balance_of
from tests.conftest import on_postgres, requires_postgres
from tests.test_points_core import new_member
from tests.test_points_lots import earn

END_2027 = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)


class Killed(BaseException):
    """What a SIGKILL does to the chunk under way: its transaction never commits."""


def members_with_due_lots(n: int, prefix: str = "1390000") -> list[int]:
    members = [new_member(f"{prefix}{i:04d}") for i in range(n)]
    with frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        for i, m in enumerate(members):
            earn(m, 10 + i, f"e{m}")
    return members


def killed_after(job: ChunkedJob, chunks: int) -> ChunkedJob:
    """The same job, whose process dies inside its chunk number ``chunks + 1``."""
    calls = [0]
    step = job.steps[0]

    def run(now, lo, hi):
        calls[0] += 1
        counts = step.run(now, lo, hi)  # the effects are written, then the process dies
        if calls[0] > chunks:
            raise Killed
        return counts

    return ChunkedJob(
        job.name, (Step(step.name, run, keys=step.keys),), job.chunk_size, job.counters
    )


def run_by_two(app, job: ChunkedJob, run_key: str) -> list[dict]:
    """The run ``run_key`` of ``job`` by two runner threads started together; their results."""
    results = []
    barrier = threading.Barrier(2)

    def runner() -> None:
        with app.app_context():
            barrier.wait()
            results.append(run_chunked(job, now=END_2027, run_key=run_key))
            db.session.remove()

    threads = [threading.Thread(target=runner, name=f"runner-{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def expired_entries() -> list[tuple[int, int]]:
    return sorted(
        db.session.execute(
            select(PointsEntry.member_id, PointsEntry.points).where(PointsEntry.kind == "expire")
        ).all()
    )


def test_an_expiry_run_killed_mid_run_and_restarted_ends_as_a_clean_run_would():
    members = members_with_due_lots(10)
    expected = {"members": 10, "lots": 10, "points": sum(10 + i for i in range(10)), "deferred": 0}
    with pytest.raises(Killed):
        run_chunked(killed_after(EXPIRY, 2), now=END_2027, run_key="night-1", chunk_size=3)
    # two chunks (6 members) committed; the third rolled back with the kill
    assert len(expired_entries()) == 6
    progress = db.session.scalar(select(JobProgress).where(JobProgress.run_key == "night-1"))
    assert progress.state == "running" and progress.frontier == members[8]
    # started again (later: the run keeps its own clock) it carries on after the last chunk
    assert (
        expire_points(
            now=datetime(2030, 1, 1, tzinfo=UTC), run_key="night-1", batch_size=3
        ).as_dict()
        == expected
    )
    assert expired_entries() == sorted((m, -(10 + i)) for i, m in enumerate(members))
    assert all(balance_of(m) == 0 for m in members)
    chunks = db.session.execute(
        select(JobChunk.lo, JobChunk.hi, JobChunk.status).order_by(JobChunk.lo)
    ).all()
    assert [c.status for c in chunks] == ["done"] * 4
    assert chunks[0].lo == 1 and chunks[-1].hi == members[-1]
    # the same run again: already done, same answer, nothing written
    assert expire_points(now=END_2027, run_key="night-1").as_dict() == expected
    assert len(expired_entries()) == 10


@requires_postgres
def test_two_runners_on_one_run_share_its_chunks_and_do_each_once(app):
    members = members_with_due_lots(24)
    slow = EXPIRY.steps[0]
    done_by: dict[int, list[str]] = {}
    lock = threading.Lock()

    def run(now, lo, hi):
        counts = slow.run(now, lo, hi)
        threading.Event().wait(0.05)  # long enough for the other runner to take the next one
        with lock:
            done_by.setdefault(lo, []).append(threading.current_thread().name)
        return counts

    job = ChunkedJob(EXPIRY.name, (Step("expire", run, keys=slow.keys),), 2, EXPIRY.counters)
    results = run_by_two(app, job, "shared")
    total = sum(10 + i for i in range(24))
    assert results[0] == results[1] == {"members": 24, "lots": 24, "points": total, "deferred": 0}
    workers = db.session.scalars(select(JobChunk.worker).where(JobChunk.status == "done")).all()
    assert len(workers) == 12 and len({w.rsplit("/", 1)[1] for w in workers}) == 2
    assert len(expired_entries()) == 24 and all(balance_of(m) == 0 for m in members)
    # each chunk's effects committed once (a retried attempt would have rolled back)
    assert sorted(done_by) == sorted(db.session.scalars(select(JobChunk.lo)).all())


def test_progress_is_reported_after_each_chunk_and_in_the_ops_view(app, client, admin_headers):
    members_with_due_lots(9)
    seen: list[float] = []
    token = ON_PROGRESS.set(lambda f: seen.append(f["percent"]))
    try:
        with pytest.raises(Killed):
            run_chunked(killed_after(EXPIRY, 1), now=END_2027, run_key="p", chunk_size=3)
    finally:
        ON_PROGRESS.reset(token)
    assert len(seen) == 1 and 0 < seen[0] < 100
    ops = client.get("/admin/v1/ops", headers=admin_headers).get_json()
    [run] = [r for r in ops["long_jobs"] if r["run"] == "p"]
    assert run["job"] == "points.expire" and run["state"] == "running"
    assert run["members_done"] == 3 and run["chunks_done"] == 1 and 0 < run["percent"] < 100
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'huiyuan_long_job_members_done{job="points.expire"} 3.0' in metrics
    # the CLI resumes the unfinished run, with a progress bar, and prints its counts
    out = app.test_cli_runner().invoke(args=["jobs", "run", "points.expire"])
    assert out.exit_code == 0, out.output
    assert "run p" in out.output and '"members": 9' in out.output
    done = figures(db.session.scalar(select(JobProgress.id).where(JobProgress.run_key == "p")))
    assert done["state"] == "done" and done["percent"] == 100.0 and done["members_done"] == 9


def test_a_self_committing_step_claimed_by_a_dead_process_is_taken_over(app):
    members_with_due_lots(3)
    with pytest.raises(Killed):
        run_chunked(
            ChunkedJob(
                NIGHTLY.name,
                tuple(
                    Step(
                        s.name,
                        _die if s.name == "rows" else s.run,
                        owns_transactions=True,
                    )
                    for s in NIGHTLY.steps
                ),
                counters=NIGHTLY.counters,
            ),
            now=END_2027,
            run_key="n1",
        )
    # the process died holding the "rows" claim: a pid that no longer exists
    dead = f"{os.uname().nodename}:{2**22 + 7}/1"
    db.session.execute(update(JobChunk).where(JobChunk.status == "running").values(worker=dead))
    db.session.commit()
    result = run_chunked(NIGHTLY, now=END_2027, run_key="n1")
    assert set(NIGHTLY.counters) <= set(result)
    steps = db.session.execute(
        select(JobChunk.step, func.count()).where(JobChunk.status == "done").group_by(JobChunk.step)
    ).all()
    assert sorted(steps) == [(step, 1) for step in range(len(NIGHTLY.steps))]


def _die(now, lo, hi):
    raise Killed


def test_two_runners_share_the_nightly_ranges_and_compute_what_one_would(app):
    from app.intel.jobs import nightly as one_pass_nightly
    from app.intel.models import MemberStats
    from tests.intel_support import at, buy, member, store

    shop = store("W1")
    with frozen(at(2027, 6, 1)):
        for i in range(9):
            who = member(at(2027, 1, 1), store_id=shop)
            for n in range(1 + i % 3):
                buy(who, shop, 1000 * (i + 1), at(2027, 1 + i, 1 + n))
    m = MemberStats
    state = (
        m.member_id,
        m.window_month,
        m.purchases_12m,
        m.payer_fen_12m,
        m.home_store_id,
        m.lifecycle,
        m.r_score,
        m.f_score,
        m.m_score,
        m.rfm_label,
    )

    def stale() -> None:
        db.session.execute(
            update(m).values(window_month=None, purchases_12m=0, r_score=None, rfm_label=None)
        )
        db.session.commit()

    stale()
    one_pass_nightly(END_2027)
    one_runner = sorted(db.session.execute(select(*state)).all())
    stale()

    def slow(step: Step) -> Step:
        def run(now, lo, hi):
            counts = step.run(now, lo, hi)
            # longer than a runner's poll (0.5 s) while the other held a whole pass: it then
            # comes and takes the next range
            threading.Event().wait(0.3)
            return counts

        return Step(step.name, run, keys=step.keys, owns_transactions=step.owns_transactions)

    job = ChunkedJob(
        NIGHTLY.name,
        tuple(slow(s) if s.keys else s for s in NIGHTLY.steps),
        2,
        NIGHTLY.counters,
    )
    results = run_by_two(app, job, "nights")
    assert results[0] == results[1]
    active = sum(1 for row in one_runner if row.purchases_12m > 0)  # January is 13 months back
    assert results[0]["windows"] == 9 and results[0]["rfm_members"] == active == 8
    for step in (1, 3):  # the windows, the stages with scores
        chunks = db.session.execute(
            select(JobChunk.worker).where(JobChunk.step == step, JobChunk.status == "done")
        ).all()
        assert len(chunks) == 5
        if on_postgres():  # SQLite's one writer lock goes to the runner already writing
            assert len({w.rsplit("/", 1)[1] for (w,) in chunks}) == 2
    assert sorted(db.session.execute(select(*state)).all()) == one_runner
    assert {row.r_score for row in one_runner} >= {1, 5}
