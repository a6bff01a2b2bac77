"""Tier jobs: the nightly review (``tiers.review``) and the re-evaluation after a ladder change
(``tiers.reevaluate``, with its progress on the ladder)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update

from app.common.clock import utcnow
from app.db import unit_of_work
from app.extensions import db
from app.tiers.models import TierSettings
from app.tiers.review import review_all


def review_tiers(now: datetime | None = None) -> dict[str, Any]:
    """Demote past keep periods (a step at a time), end expired overrides, renew keeps."""
    return review_all(now or utcnow())


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
