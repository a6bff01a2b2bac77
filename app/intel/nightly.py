"""``intel.nightly`` as a chunked job (``app.jobs.chunked``): its passes (missing rows,
12-month windows, then lifecycle stages with RFM scores) run as the steps of one restartable run.

The passes themselves stay in ``app.intel.jobs``: each is set-based and computes the same
result when run again. The windows pass is handed out in ranges of member ids
(``WINDOW_CHUNK`` stats rows each, one transaction each), so runners on several workers share
it; the other two are claimed whole (RFM's quintile boundaries are computed over every member
at the start of their pass), so a run killed in one carries on with it, and a second runner
waits for it rather than running it twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.common.clock import utcnow
from app.extensions import db
from app.intel import jobs as passes
from app.intel.models import MemberStats
from app.jobs.chunked import ChunkedJob, Step, register, run_chunked

# stats rows per chunk of the windows pass: at 10 M members, 500 chunks of a few seconds each
WINDOW_CHUNK = 20_000


def _whole(fn: Any, key: str | None = None) -> Any:
    def run(now: datetime, lo: int, hi: int) -> dict[str, int]:
        out = fn(now)
        return out if isinstance(out, dict) else {key or "count": out}

    return run


def _stats_keys(now: datetime, after: int, limit: int) -> list[int]:
    return list(
        db.session.scalars(
            select(MemberStats.member_id)
            .where(MemberStats.member_id > after)
            .order_by(MemberStats.member_id)
            .limit(limit)
        )
    )


def _windows(now: datetime, lo: int, hi: int) -> dict[str, int]:
    return {"windows": passes.windows_in_range(now, lo, hi)}


def _stages_and_rfm(now: datetime, lo: int, hi: int) -> dict[str, int]:
    out = passes.stage_and_score(now)
    if out.get("rows_written"):
        passes.refresh_planner_statistics()  # as the plain nightly does after writing rows
    return out


NIGHTLY = register(
    ChunkedJob(
        "intel.nightly",
        (
            Step("rows", _whole(passes.ensure_rows, "rows_added"), owns_transactions=True),
            Step("windows", _windows, keys=_stats_keys),
            Step("stages_and_rfm", _stages_and_rfm, owns_transactions=True),
        ),
        chunk_size=WINDOW_CHUNK,
        counters=("rows_added", "windows", "stage_moves", "rfm_members", "rows_written"),
    )
)


def nightly(now: datetime | None = None, run_key: str | None = None) -> dict[str, Any]:
    """The ``intel.nightly`` job, restartable and shareable; the passes' counts."""
    return run_chunked(NIGHTLY, now=now or utcnow(), run_key=run_key)
