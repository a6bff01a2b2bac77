"""One row per periodic job per period: the claim that makes each period run once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db


class JobRun(db.Model):
    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("name", "period_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    period_key: Mapped[str] = mapped_column(String(64))
    # claimed → enqueued → running → done | failed
    status: Mapped[str] = mapped_column(String(16), default="claimed", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobProgress(db.Model):
    """One run of a chunked job (``app.jobs.chunked``): its cursor, clock and figures.

    ``run_key`` names the run (a scheduled period, or a run started by hand), so a run killed
    half-way and started again picks up here. ``frontier`` is the last key handed out in the
    current pass; chunks below it are in ``job_chunks``."""

    __tablename__ = "job_progress"
    __table_args__ = (UniqueConstraint("name", "run_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    run_key: Mapped[str] = mapped_column(String(96))
    # running → done
    state: Mapped[str] = mapped_column(String(16), default="running", index=True)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)  # the job's "now", the same on resume
    chunk_size: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=0)  # index of the pass under way
    frontier: Mapped[int] = mapped_column(BigInteger, default=0)  # last key handed out
    exhausted: Mapped[bool] = mapped_column(Boolean, default=False)  # no key left in this pass
    key_min: Mapped[int] = mapped_column(BigInteger, default=0)  # member ids at the start:
    key_max: Mapped[int] = mapped_column(BigInteger, default=0)  # the progress scale
    result: Mapped[dict | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobChunk(db.Model):
    """A range of keys of one pass of a run. Done in the same transaction as its effects, so
    a chunk is either wholly done (with its counts) or not at all."""

    __tablename__ = "job_chunks"
    __table_args__ = (UniqueConstraint("progress_id", "step", "lo"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    progress_id: Mapped[int] = mapped_column(
        ForeignKey("job_progress.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[int] = mapped_column(Integer)
    lo: Mapped[int] = mapped_column(BigInteger)
    hi: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(Integer)  # keys in the range when it was handed out
    # pending → done
    status: Mapped[str] = mapped_column(String(16), default="pending")
    worker: Mapped[str | None] = mapped_column(String(96))  # host:pid that did it
    counts: Mapped[dict | None] = mapped_column(JSON)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
