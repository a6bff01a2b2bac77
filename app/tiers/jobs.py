"""Tier jobs: the nightly review (``tiers.review``) and the re-evaluation after a ladder change
(``tiers.reevaluate``, with its progress on the ladder)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from app.common.clock import utcnow
from app.db import unit_of_work
from app.extensions import db
from app.jobs.chunked import ChunkedJob, Step, register, run_chunked
from app.tiers.models import MemberTier, TierSettings
from app.tiers.review import CHUNK, review_all, review_chunk


def _tier_keys(now: datetime, after: int, limit: int) -> list[int]:
    return list(
        db.session.scalars(
            select(MemberTier.member_id)
            .where(MemberTier.member_id > after)
            .order_by(MemberTier.member_id)
            .limit(limit)
        )
    )


def _review_range(now: datetime, lo: int, hi: int) -> dict[str, int]:
    members = db.session.scalar(
        select(func.count()).where(MemberTier.member_id >= lo, MemberTier.member_id <= hi)
    )
    return {"members": int(members or 0), "changed": review_chunk(lo, hi, now, "review")}


REVIEW = register(
    ChunkedJob(
        "tiers.review",
        (Step("review", _review_range, keys=_tier_keys),),
        chunk_size=CHUNK,
        counters=("members", "changed"),
    )
)


def review_tiers(now: datetime | None = None, run_key: str | None = None) -> dict[str, Any]:
    """Demote past keep periods (a step at a time), end expired overrides, renew keeps.

    A chunked job (``app.jobs.chunked``): restartable, shareable between runners."""
    return run_chunked(REVIEW, now=now or utcnow(), run_key=run_key)


def reevaluate_tiers(version: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Re-evaluate every member against the ladder; resumes after the last chunk done.

    A newer ladder (``version``) supersedes this run: it stops and the newer run carries on."""
    settings = db.session.get(TierSettings, 1)
    if settings is None or (version is not None and settings.version != version):
        db.session.rollback()
        return {"members": 0, "changed": 0, "superseded": True}
    after, version = settings.reeval_after, settings.version
    with unit_of_work():
        db.session.execute(
            update(TierSettings)
            .where(TierSettings.id == 1, TierSettings.version == version)
            .values(reeval_state="running")
        )

    def progress(last_id: int, done: int) -> None:
        with unit_of_work():
            db.session.execute(
                update(TierSettings)
                .where(TierSettings.id == 1, TierSettings.version == version)
                .values(reeval_after=last_id, reeval_done=TierSettings.reeval_done + done)
            )

    counts = review_all(now or utcnow(), reason="ladder", after=after, progress=progress)
    with unit_of_work():
        db.session.execute(
            update(TierSettings)
            .where(TierSettings.id == 1, TierSettings.version == version)
            .values(reeval_state="done", reeval_finished_at=utcnow())
        )
    return counts
