"""Tier jobs: the nightly review (``tiers.review``) and the re-evaluation after a ladder change
(``tiers.reevaluate``, with its progress on the ladder)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update

from app.common.clock import utcnow
from app.db import unit_of_work
from app.extensions import db
from app.jobs.chunked import ChunkedJob, Step, register, run_chunked
from app.tiers.models import MemberTier, TierSettings
from app.tiers.review import CHUNK, review_chunk


def _tier_keys(now: datetime, after: int, limit: int) -> list[int]:
    return list(
        db.session.scalars(
            select(MemberTier.member_id)
            .where(MemberTier.member_id > after)
            .order_by(MemberTier.member_id)
            .limit(limit)
        )
    )


def _members_in(lo: int, hi: int) -> int:
    members = db.session.scalar(
        select(func.count()).where(MemberTier.member_id >= lo, MemberTier.member_id <= hi)
    )
    return int(members or 0)


def _review_range(now: datetime, lo: int, hi: int) -> dict[str, int]:
    return {"members": _members_in(lo, hi), "changed": review_chunk(lo, hi, now, "review")}


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


def _reevaluate_range(version: int) -> Any:
    def run(now: datetime, lo: int, hi: int) -> dict[str, int]:
        current = db.session.scalar(select(TierSettings.version).where(TierSettings.id == 1))
        if current != version:  # a newer ladder: its own run re-evaluates everyone
            return {"members": 0, "changed": 0, "superseded": 1}
        counts = {"members": _members_in(lo, hi), "changed": review_chunk(lo, hi, now, "ladder")}
        db.session.execute(
            update(TierSettings)
            .where(TierSettings.id == 1, TierSettings.version == version)
            .values(
                reeval_after=case(
                    (TierSettings.reeval_after < hi, hi), else_=TierSettings.reeval_after
                ),
                reeval_done=TierSettings.reeval_done + counts["members"],
            )
        )
        return counts

    return run


def _reevaluation(version: int) -> ChunkedJob:
    return ChunkedJob(
        "tiers.reevaluate",
        (Step("ladder", _reevaluate_range(version), keys=_tier_keys),),
        chunk_size=CHUNK,
        counters=("members", "changed"),
    )


register(_reevaluation(0))  # the shape of its runs, for their figures


def reevaluate_tiers(version: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Re-evaluate every member against the ladder: a chunked job (``app.jobs.chunked``), one
    run per ladder version (``ladder:<version>``), so a run stopped half-way resumes after the
    last chunk done and two runners share it; the ladder's progress is kept up to date.

    A newer ladder (``version``) supersedes this run: it stops and the newer run carries on."""
    settings = db.session.get(TierSettings, 1)
    if settings is None or (version is not None and settings.version != version):
        db.session.rollback()
        return {"members": 0, "changed": 0, "superseded": True}
    version = settings.version
    with unit_of_work():
        db.session.execute(
            update(TierSettings)
            .where(TierSettings.id == 1, TierSettings.version == version)
            .values(reeval_state="running")
        )
    counts = run_chunked(_reevaluation(version), now=now or utcnow(), run_key=f"ladder:{version}")
    with unit_of_work():
        db.session.execute(
            update(TierSettings)
            .where(TierSettings.id == 1, TierSettings.version == version)
            .values(reeval_state="done", reeval_finished_at=utcnow())
        )
    counts.pop("superseded", None)
    return counts
