"""Long jobs that walk every member: chunked, restartable, shareable, with progress.

A :class:`ChunkedJob` is a list of :class:`Step` passes. A keyed step hands out chunks of keys
(member ids, keyset order: ``keys(now, after, limit)``) and runs ``run(now, lo, hi)`` on each
range ``lo..hi``; a single step is one chunk. The state of a run lives in the database:

- ``job_progress``: one row per run (``name`` + ``run_key``): the run's clock (``as_of``, so a
  resumed run computes with the same "now"), the step under way and its ``frontier`` (the last
  key handed out);
- ``job_chunks``: one row per range handed out. A chunk is marked done *in the transaction of
  its effects* (the guarded ``UPDATE … WHERE status = 'pending'`` is also the claim), so a chunk
  is wholly done, counts included, or not at all.

So a run killed half-way and started again with the same ``run_key`` carries on after the
last chunk done and ends with the same counts as a clean run; two runners on the same run (two
workers, two machines, a worker and ``flask jobs run``) share its chunks and do each once:
handing out a range is an optimistic update of the frontier, taking a chunk a ``SKIP LOCKED``
pick plus the guarded update. Memory is bounded by the chunk size, whatever the member count.

Steps that own their transactions (``owns_transactions``: a wrapped function that commits as
it goes, such as the intelligence passes) are claimed first (``running``), then marked done; a
claim whose process is gone (same host) or older than ``lease`` seconds is taken over, which
is safe because such steps must be idempotent.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
from app.db import transaction
from app.extensions import db
from app.jobs.models import JobChunk, JobProgress

# The run a job call belongs to: set by the runner (a scheduled period) or by ``flask jobs
# run`` (the unfinished run to resume). Unset: a call starts a run of its own.
RUN_KEY: ContextVar[str | None] = ContextVar("RUN_KEY", default=None)
# Called after each chunk with the run's figures (the CLI's progress bar).
ON_PROGRESS: ContextVar[Callable[[dict[str, Any]], None] | None] = ContextVar(
    "ON_PROGRESS", default=None
)

# Chunk size for runs started here without one (``flask jobs run --chunk-size``).
CHUNK_SIZE: ContextVar[int | None] = ContextVar("CHUNK_SIZE", default=None)
# The run (its ``job_progress`` id) whose chunk is being worked, while a step runs: what a
# step keys anything it leaves for the run's later steps by (``app.intel.nightly``).
CURRENT_RUN: ContextVar[int | None] = ContextVar("CURRENT_RUN", default=None)

KeysFn = Callable[[datetime, int, int], Sequence[int]]
RunFn = Callable[[datetime, int, int], dict[str, int]]


@dataclass(frozen=True)
class Step:
    name: str
    run: RunFn  # (now, lo, hi) → counts; runs inside the chunk's transaction
    keys: KeysFn | None = None  # (now, after, limit) → ascending keys; None: one chunk
    owns_transactions: bool = False  # ``run`` commits by itself (must then be idempotent)


@dataclass(frozen=True)
class ChunkedJob:
    name: str
    steps: tuple[Step, ...]
    chunk_size: int = 1000
    counters: tuple[str, ...] = ()  # counts reported as 0 when nothing happened
    lease: int = 3600  # seconds before a self-committing step's claim may be taken over
    poll: float = 0.5  # seconds between looks while other runners finish their chunks
    extra: dict[str, Any] = field(default_factory=dict)


def worker_name() -> str:
    """``host:pid/thread``: who did a chunk (and whether a claim's process still lives)."""
    return f"{socket.gethostname()}:{os.getpid()}/{threading.get_ident()}"


def run_chunked(
    job: ChunkedJob,
    *,
    now: datetime | None = None,
    run_key: str | None = None,
    chunk_size: int | None = None,
) -> dict[str, int]:
    """Run (or join, or resume) the run ``run_key`` of ``job`` to its end; its counts.

    A job: it owns its transactions (one per chunk), so call it outside any unit of work."""
    run_key = run_key or RUN_KEY.get() or f"adhoc:{uuid.uuid4().hex}"
    size = chunk_size or CHUNK_SIZE.get() or job.chunk_size
    progress_id = _open(job, run_key, now or utcnow(), size)
    token = CURRENT_RUN.set(progress_id)
    try:
        return _run(job, progress_id)
    finally:
        CURRENT_RUN.reset(token)


def _run(job: ChunkedJob, progress_id: int) -> dict[str, int]:
    me = worker_name()
    report = ON_PROGRESS.get()
    while True:
        p = _load(progress_id)
        if p.state == "done":
            db.session.rollback()
            return dict(p.result or {})
        step_no, step = p.step, job.steps[p.step]
        as_of, frontier, exhausted, size = p.as_of, p.frontier, p.exhausted, p.chunk_size
        db.session.rollback()
        if _work_one(job, step, progress_id, step_no, as_of, me):
            if report is not None:
                report(figures(progress_id, job))
            continue
        if not exhausted:
            _hand_out(step, progress_id, step_no, as_of, frontier, size)
            continue
        if not _advance(job, progress_id, step_no):
            time.sleep(job.poll)  # other runners hold this step's last chunks


def _open(job: ChunkedJob, run_key: str, now: datetime, chunk_size: int) -> int:
    found = db.session.scalar(
        select(JobProgress.id).where(JobProgress.name == job.name, JobProgress.run_key == run_key)
    )
    if found is not None:
        db.session.rollback()
        return found
    from app.members.models import Member

    lo, hi = db.session.execute(select(func.min(Member.id), func.max(Member.id))).one()
    row = JobProgress(
        name=job.name,
        run_key=run_key,
        state="running",
        as_of=now,
        chunk_size=chunk_size,
        step=0,
        frontier=0,
        exhausted=False,
        key_min=lo or 0,
        key_max=hi or 0,
        started_at=utcnow(),
        updated_at=utcnow(),
    )
    db.session.add(row)
    try:
        db.session.commit()
        return row.id
    except IntegrityError:  # another runner opened it first: join it
        db.session.rollback()
        return db.session.scalar(
            select(JobProgress.id).where(
                JobProgress.name == job.name, JobProgress.run_key == run_key
            )
        )


def _load(progress_id: int) -> JobProgress:
    return db.session.execute(
        select(JobProgress)
        .where(JobProgress.id == progress_id)
        .execution_options(populate_existing=True)
    ).scalar_one()


def _hand_out(
    step: Step, progress_id: int, step_no: int, as_of: datetime, frontier: int, size: int
) -> None:
    """Hand out the next range of keys after ``frontier`` (or mark the step exhausted)."""
    if step.keys is None:
        keys: Sequence[int] = [] if frontier else [0]
    else:
        keys = list(step.keys(as_of, frontier, size))
        db.session.rollback()  # end the read

    def hand_out() -> None:
        guard = update(JobProgress).where(
            JobProgress.id == progress_id,
            JobProgress.step == step_no,
            JobProgress.frontier == frontier,
            JobProgress.exhausted.is_(False),
        )
        if not keys:
            db.session.execute(guard.values(exhausted=True, updated_at=utcnow()))
            return
        hi = keys[-1] if step.keys is not None else 1
        moved = db.session.execute(guard.values(frontier=hi, updated_at=utcnow())).rowcount
        if moved:  # else another runner handed this range out first
            db.session.add(
                JobChunk(
                    progress_id=progress_id,
                    step=step_no,
                    lo=frontier + 1 if step.keys is not None else 0,
                    hi=hi if step.keys is not None else 0,
                    size=len(keys) if step.keys is not None else 0,
                    status="pending",
                )
            )

    transaction(hand_out)


def _work_one(
    job: ChunkedJob, step: Step, progress_id: int, step_no: int, as_of: datetime, me: str
) -> bool:
    """Do one chunk of this step that nobody is doing; False when there is none."""
    if step.owns_transactions:
        return _work_self_committing(job, step, progress_id, step_no, as_of, me)

    def work() -> bool:
        picked = db.session.execute(
            select(JobChunk.id, JobChunk.lo, JobChunk.hi)
            .where(
                JobChunk.progress_id == progress_id,
                JobChunk.step == step_no,
                JobChunk.status == "pending",
            )
            .order_by(JobChunk.lo)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if picked is None:
            return False
        chunk_id, lo, hi = picked
        claimed = db.session.execute(
            update(JobChunk)
            .where(JobChunk.id == chunk_id, JobChunk.status == "pending")
            .values(status="done", worker=me, done_at=utcnow())
        ).rowcount
        if not claimed:
            return True  # done meanwhile by another runner: look again
        counts = step.run(as_of, lo, hi)
        db.session.execute(
            update(JobChunk).where(JobChunk.id == chunk_id).values(counts=_ints(counts))
        )
        return True

    return transaction(work)


def _work_self_committing(
    job: ChunkedJob, step: Step, progress_id: int, step_no: int, as_of: datetime, me: str
) -> bool:
    def claim() -> tuple[int, int, int] | None:
        rows = db.session.execute(
            select(JobChunk.id, JobChunk.lo, JobChunk.hi, JobChunk.status, JobChunk.worker)
            .where(
                JobChunk.progress_id == progress_id,
                JobChunk.step == step_no,
                JobChunk.status.in_(("pending", "running")),
            )
            .order_by(JobChunk.lo)
        ).all()
        for chunk_id, lo, hi, status, worker in rows:
            guard = update(JobChunk).where(JobChunk.id == chunk_id, JobChunk.status == status)
            if status == "running":
                if not _abandoned(worker, job.lease, chunk_id):
                    continue
                guard = guard.where(JobChunk.worker == worker)
            if db.session.execute(
                guard.values(status="running", worker=me, done_at=utcnow())
            ).rowcount:
                return chunk_id, lo, hi
        return None

    picked = transaction(claim)
    if picked is None:
        return False
    chunk_id, lo, hi = picked
    counts = step.run(as_of, lo, hi)
    db.session.rollback()

    def finish() -> None:
        db.session.execute(
            update(JobChunk)
            .where(JobChunk.id == chunk_id, JobChunk.worker == me)
            .values(status="done", counts=_ints(counts), done_at=utcnow())
        )

    transaction(finish)
    return True


def _abandoned(worker: str | None, lease: int, chunk_id: int) -> bool:
    """A claim whose process is gone (same host) or older than the lease."""
    host, _, pid = (worker or "").partition("/")[0].rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    claimed_at = db.session.scalar(select(JobChunk.done_at).where(JobChunk.id == chunk_id))
    return claimed_at is not None and claimed_at < utcnow() - timedelta(seconds=lease)


def _advance(job: ChunkedJob, progress_id: int, step_no: int) -> bool:
    """Move to the next step (or finish) once every chunk of this one is done."""

    def advance() -> bool:
        open_chunks = db.session.scalar(
            select(func.count()).where(
                JobChunk.progress_id == progress_id,
                JobChunk.step == step_no,
                JobChunk.status != "done",
            )
        )
        if open_chunks:
            return False
        guard = update(JobProgress).where(
            JobProgress.id == progress_id,
            JobProgress.step == step_no,
            JobProgress.exhausted.is_(True),
        )
        if step_no + 1 < len(job.steps):
            db.session.execute(
                guard.values(step=step_no + 1, frontier=0, exhausted=False, updated_at=utcnow())
            )
        else:
            db.session.execute(
                guard.values(
                    state="done",
                    result=_total(job, progress_id),
                    finished_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        return True

    return transaction(advance)


def _total(job: ChunkedJob, progress_id: int) -> dict[str, int]:
    """The run's counts: the sum of its chunks' counts, read a page at a time."""
    total = dict.fromkeys(job.counters, 0)
    rows = db.session.execute(
        select(JobChunk.counts)
        .where(JobChunk.progress_id == progress_id)
        .execution_options(yield_per=2000)
    )
    for (counts,) in rows:
        for key, value in (counts or {}).items():
            total[key] = total.get(key, 0) + int(value)
    return total


def _ints(counts: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in counts.items() if isinstance(v, int | bool)}


def figures(progress_id: int, job: ChunkedJob | None = None) -> dict[str, Any]:
    """How far a run is: step, percent (of the member-id range), keys and chunks done,
    rate and an estimate of the time left."""
    p = db.session.get(JobProgress, progress_id)
    assert p is not None
    if job is None:
        job = _job_named(p.name)
    steps = len(job.steps) if job is not None else 1
    done_keys, done_chunks, last_done = db.session.execute(
        select(
            func.coalesce(func.sum(JobChunk.size), 0), func.count(), func.max(JobChunk.done_at)
        ).where(JobChunk.progress_id == p.id, JobChunk.status == "done")
    ).one()
    open_chunks = db.session.scalar(
        select(func.count()).where(JobChunk.progress_id == p.id, JobChunk.status != "done")
    )
    if p.state == "done":
        percent = 100.0
    else:
        span = max(p.key_max - p.key_min + 1, 1)
        keyed = job is not None and job.steps[p.step].keys is not None
        within = 1.0 if p.exhausted else min(max(p.frontier - p.key_min + 1, 0) / span, 1.0)
        if not keyed:
            within = 1.0 if p.exhausted else 0.0
        percent = round(100.0 * (p.step + within) / steps, 1)
    end = p.finished_at or last_done or p.started_at
    seconds = max((end - p.started_at).total_seconds(), 0.0)
    rate = done_keys / seconds if seconds > 0 else 0.0
    eta = None
    if p.state != "done" and 0 < percent < 100:
        eta = round(seconds * (100 - percent) / percent, 1)
    return {
        "job": p.name,
        "run": p.run_key,
        "state": p.state,
        "step": job.steps[p.step].name if job is not None else str(p.step),
        "steps": steps,
        "percent": percent,
        "members_done": int(done_keys),
        "chunks_done": int(done_chunks),
        "chunks_open": int(open_chunks or 0),
        "members_per_second": round(rate, 1),
        "eta_seconds": eta,
        "started_at": p.started_at.isoformat(),
        "finished_at": p.finished_at.isoformat() if p.finished_at else None,
        "result": p.result,
    }


def _job_named(name: str) -> ChunkedJob | None:
    if name not in CHUNKED_JOBS:
        from app.jobs.registry import JOBS

        if name in JOBS:
            JOBS[name].function()  # imports the feature's jobs module, which registers it
    return CHUNKED_JOBS.get(name)


def latest_unfinished(name: str) -> str | None:
    """The run key of ``name``'s newest unfinished run (what ``flask jobs run`` resumes)."""
    return db.session.scalar(
        select(JobProgress.run_key)
        .where(JobProgress.name == name, JobProgress.state == "running")
        .order_by(JobProgress.id.desc())
        .limit(1)
    )


def runs_overview(recent: int = 10) -> list[dict[str, Any]]:
    """Figures of every unfinished run and of the ``recent`` latest finished ones."""
    running = db.session.scalars(
        select(JobProgress.id).where(JobProgress.state == "running").order_by(JobProgress.id)
    ).all()
    finished = db.session.scalars(
        select(JobProgress.id)
        .where(JobProgress.state == "done")
        .order_by(JobProgress.id.desc())
        .limit(recent)
    ).all()
    return [figures(i) for i in [*running, *finished]]


def prune_progress(keep_days: int = 14) -> int:
    """Delete finished runs (and their chunks) older than ``keep_days``."""
    from sqlalchemy import delete

    cutoff = utcnow() - timedelta(days=keep_days)
    old = select(JobProgress.id).where(
        JobProgress.state == "done", JobProgress.finished_at < cutoff
    )
    db.session.execute(delete(JobChunk).where(JobChunk.progress_id.in_(old)))
    deleted = db.session.execute(delete(JobProgress).where(JobProgress.id.in_(old))).rowcount
    db.session.commit()
    return deleted or 0


# name → job: filled in by the feature packages' jobs modules (``register``)
CHUNKED_JOBS: dict[str, ChunkedJob] = {}


def register(job: ChunkedJob) -> ChunkedJob:
    CHUNKED_JOBS[job.name] = job
    return job
